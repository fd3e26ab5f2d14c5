package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// schemas are the kinds the manifests may use, each with the typed struct it must decode
// into. A kind missing here fails the check (kubeconform's "missing schema") rather than
// passing unchecked.
var schemas = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
}

// object is one decoded manifest document.
type object struct {
	where string // file#doc, for messages
	kind  string // apiVersion/kind
	meta  *metav1.ObjectMeta
	obj   any
}

func (o object) String() string {
	return fmt.Sprintf("%s: %s %q", o.where, o.kind[strings.LastIndex(o.kind, "/")+1:], o.meta.Name)
}

// kustomization is the part of kustomization.yaml the check relies on; kustomize itself
// validates the rest (`kubectl kustomize`, run by make lint-deploy where installed).
type kustomization struct {
	Namespace string   `json:"namespace"`
	Resources []string `json:"resources"`
}

// checkK8s validates every manifest in dir and returns the number of files and objects.
func checkK8s(dir string, p *problems) (files, objects int) {
	names, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil || len(names) == 0 {
		p.addf("%s: no manifests found", dir)
		return 0, 0
	}
	var kust *kustomization
	var objs []object
	for _, name := range names {
		rel := filepath.Base(name)
		if rel == "kustomization.yaml" || rel == "kustomization.yml" {
			kust = readKustomization(dir, name, names, p)
			continue
		}
		files++
		objs = append(objs, decodeFile(name, rel, p)...)
	}
	if kust == nil {
		p.addf("%s: kustomization.yaml missing (kubectl apply -k needs it)", dir)
		kust = &kustomization{}
	}
	checkObjects(objs, kust.Namespace, p)
	return files, len(objs)
}

func readKustomization(dir, path string, all []string, p *problems) *kustomization {
	raw, err := os.ReadFile(path)
	if err != nil {
		p.addf("%s: %v", path, err)
		return nil
	}
	var k kustomization
	if err := yaml.Unmarshal(raw, &k); err != nil {
		p.addf("%s: %v", filepath.Base(path), err)
		return nil
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			p.addf("kustomization.yaml: resource %s does not exist", r)
		}
	}
	for _, f := range all {
		base := filepath.Base(f)
		if base != filepath.Base(path) && !slices.Contains(k.Resources, base) {
			p.addf("kustomization.yaml: %s is not listed in resources, so kubectl apply -k would skip it", base)
		}
	}
	return &k
}

// decodeFile splits a file into documents and decodes each strictly into its typed struct.
func decodeFile(path, rel string, p *problems) []object {
	f, err := os.Open(path)
	if err != nil {
		p.addf("%s: %v", rel, err)
		return nil
	}
	defer f.Close()
	r := k8syaml.NewYAMLReader(bufio.NewReader(f))
	var out []object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			p.addf("%s: %v", rel, err)
			return out
		}
		where := fmt.Sprintf("%s#%d", rel, i)
		if o, ok := decodeDoc(doc, where, p); ok {
			out = append(out, o)
		}
	}
}

func decodeDoc(doc []byte, where string, p *problems) (object, bool) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		p.addf("%s: invalid YAML: %v", where, err)
		return object{}, false
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return object{}, false // only comments
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		p.addf("%s: %v", where, err)
		return object{}, false
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		p.addf("%s: apiVersion and kind are required", where)
		return object{}, false
	}
	key := tm.APIVersion + "/" + tm.Kind
	newObj, ok := schemas[key]
	if !ok {
		p.addf("%s: no schema for apiVersion %q kind %q (unknown or misspelt)", where, tm.APIVersion, tm.Kind)
		return object{}, false
	}
	obj := newObj()
	// Strict: unknown or duplicate fields and wrong types are errors.
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		p.addf("%s: %s does not match its schema: %v", where, key, err)
		return object{}, false
	}
	meta := metaOf(obj)
	o := object{where: where, kind: key, meta: meta, obj: obj}
	checkMeta(o, p)
	return o, true
}

func metaOf(obj any) *metav1.ObjectMeta {
	return obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
}

func checkMeta(o object, p *problems) {
	m := o.meta
	if m.Name == "" {
		p.addf("%s: metadata.name is required", o.where)
		return
	}
	nameErrs := validation.IsDNS1123Subdomain(m.Name)
	if o.kind == "v1/Service" {
		nameErrs = validation.IsDNS1035Label(m.Name)
	}
	for _, e := range nameErrs {
		p.addf("%s: metadata.name: %s", o, e)
	}
	for _, set := range []map[string]string{m.Labels} {
		for k, v := range set {
			for _, e := range validation.IsQualifiedName(k) {
				p.addf("%s: label key %q: %s", o, k, e)
			}
			for _, e := range validation.IsValidLabelValue(v) {
				p.addf("%s: label %s value %q: %s", o, k, v, e)
			}
		}
	}
}

// index holds the objects by kind for cross-references.
type index struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	deployments []*appsv1.Deployment
}

func checkObjects(objs []object, namespace string, p *problems) {
	idx := index{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	seen := map[string]string{}
	hasNamespace := false
	for _, o := range objs {
		key := o.kind + "/" + o.meta.Namespace + "/" + o.meta.Name
		if prev, dup := seen[key]; dup {
			p.addf("%s: duplicate of %s", o, prev)
		}
		seen[key] = o.where
		if o.kind != "v1/Namespace" && namespace != "" && o.meta.Namespace != "" && o.meta.Namespace != namespace {
			p.addf("%s: namespace %q differs from kustomization namespace %q", o, o.meta.Namespace, namespace)
		}
		switch v := o.obj.(type) {
		case *corev1.Namespace:
			hasNamespace = hasNamespace || v.Name == namespace
		case *corev1.ConfigMap:
			idx.configMaps[v.Name] = v
			for k := range v.Data {
				for _, e := range validation.IsConfigMapKey(k) {
					p.addf("%s: key %q: %s", o, k, e)
				}
			}
		case *corev1.Secret:
			idx.secrets[v.Name] = v
			for k := range v.StringData {
				for _, e := range validation.IsConfigMapKey(k) {
					p.addf("%s: key %q: %s", o, k, e)
				}
			}
		case *appsv1.Deployment:
			idx.deployments = append(idx.deployments, v)
		}
	}
	if namespace != "" && !hasNamespace {
		p.addf("kustomization namespace %q has no Namespace manifest", namespace)
	}

	jobs := 0
	migrateJob := false
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			checkDeployment(o, v, idx, p)
		case *batchv1.Job:
			jobs++
			checkJob(o, v, idx, p)
			for _, c := range v.Spec.Template.Spec.Containers {
				migrateJob = migrateJob || slices.Contains(append(c.Command, c.Args...), "-migrate")
			}
		case *corev1.Service:
			checkService(o, v, idx, p)
		case *autoscalingv2.HorizontalPodAutoscaler:
			checkHPA(o, v, idx, p)
		case *policyv1.PodDisruptionBudget:
			if v.Spec.Selector == nil || len(matchingDeployments(v.Spec.Selector, idx)) == 0 {
				p.addf("%s: selector matches no Deployment", o)
			}
			if v.Spec.MinAvailable == nil && v.Spec.MaxUnavailable == nil {
				p.addf("%s: minAvailable or maxUnavailable is required", o)
			}
		}
	}
	if !migrateJob {
		p.addf("deployments/k8s: no Job runs -migrate (the migration Job is required)")
	}
	for _, s := range services {
		if !slices.ContainsFunc(objs, func(o object) bool { return o.kind == "apps/v1/Deployment" && o.meta.Name == s.Name }) {
			p.addf("deployments/k8s: no Deployment named %q", s.Name)
		}
		if !slices.ContainsFunc(objs, func(o object) bool { return o.kind == "v1/Service" && o.meta.Name == s.Name }) {
			p.addf("deployments/k8s: no Service named %q", s.Name)
		}
	}
}

func checkDeployment(o object, d *appsv1.Deployment, idx index, p *problems) {
	sel := d.Spec.Selector
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		p.addf("%s: spec.selector is required", o)
	} else if s, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		p.addf("%s: spec.selector: %v", o, err)
	} else if !s.Matches(labels.Set(d.Spec.Template.Labels)) {
		p.addf("%s: spec.selector does not match the pod template labels", o)
	}
	if d.Spec.Replicas != nil && *d.Spec.Replicas < 0 {
		p.addf("%s: replicas must not be negative", o)
	}
	spec := d.Spec.Template.Spec
	checkPodSpec(o, spec, idx, p)

	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	} else {
		p.addf("%s: terminationGracePeriodSeconds must be set (longer than SHUTDOWN_TIMEOUT)", o)
	}
	var metricsPorts []int
	for _, c := range spec.Containers {
		co := fmt.Sprintf("%s container %q", o, c.Name)
		if len(c.Ports) == 0 {
			p.addf("%s: declares no ports", co)
		}
		if port, ok := checkMetricsAddr(co, c, idx, p); ok {
			metricsPorts = append(metricsPorts, port)
		}
		checkProbe(co, "livenessProbe", c.LivenessProbe, "/healthz", c, p)
		checkProbe(co, "readinessProbe", c.ReadinessProbe, "/readyz", c, p)
		if c.StartupProbe != nil {
			checkProbe(co, "startupProbe", c.StartupProbe, "", c, p)
		}
		env := containerEnv(c, idx)
		if s, ok := serviceNamed(d.Name); ok && c.Name == d.Name {
			for _, up := range s.Calls {
				if got := env[upstreamVar(up)]; got != upstreamURL(up) {
					p.addf("%s: %s %q, want %s (the Service)", co, upstreamVar(up), got, upstreamURL(up))
				}
			}
		}
		if addr, ok := env["HTTP_ADDR"]; ok {
			_, port, err := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(port)
			if err != nil || !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == n }) {
				p.addf("%s: HTTP_ADDR %q does not listen on a declared containerPort", co, addr)
			}
		}
		timeout := time.Duration(defaultShutdownTimeoutSeconds) * time.Second
		if v, ok := env["SHUTDOWN_TIMEOUT"]; ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				p.addf("%s: SHUTDOWN_TIMEOUT %q: %v", co, v, err)
				continue
			}
			timeout = d
		}
		var pause time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			pause = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		if time.Duration(grace)*time.Second <= timeout+pause {
			p.addf("%s: terminationGracePeriodSeconds %d must exceed SHUTDOWN_TIMEOUT %s + preStop %s, or in-flight work is killed",
				co, grace, timeout, pause)
		}
	}
	checkScrapeAnnotations(o, d, metricsPorts, p)
}

// metricsAddr returns the port of a container's METRICS_ADDR, if it sets a valid one.
func metricsAddr(c corev1.Container, idx index) (int, bool) {
	addr := containerEnv(c, idx)["METRICS_ADDR"]
	if addr == "" {
		return 0, false
	}
	port, err := listenPort(addr)
	return port, err == nil
}

// checkMetricsAddr checks a Deployment container's METRICS_ADDR, the listener that serves
// /metrics without authentication: a valid address on its own port, declared as the
// containerPort named metrics. It returns that port.
func checkMetricsAddr(co string, c corev1.Container, idx index, p *problems) (int, bool) {
	env := containerEnv(c, idx)
	addr, ok := env["METRICS_ADDR"]
	if !ok || addr == "" {
		return 0, false
	}
	port, err := listenPort(addr)
	if err != nil {
		p.addf("%s: METRICS_ADDR %q: %v", co, addr, err)
		return 0, false
	}
	if httpAddr, ok := env["HTTP_ADDR"]; ok {
		if hp, err := listenPort(httpAddr); err == nil && hp == port {
			p.addf("%s: METRICS_ADDR %q must not share HTTP_ADDR's port %d", co, addr, hp)
		}
	}
	i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == metricsPortName })
	if i < 0 || int(c.Ports[i].ContainerPort) != port {
		p.addf("%s: METRICS_ADDR %q needs containerPort %d named %s", co, addr, port, metricsPortName)
	}
	return port, true
}

// checkScrapeAnnotations requires the service Deployments to be scraped, and scraping to
// go to the METRICS_ADDR listener: scrapers cannot hold the short-lived admin JWT
// /metrics needs on HTTP_ADDR once JWT_SECRET is set (and it is 404 there with
// METRICS_ADDR set). metricsPorts are the containers' METRICS_ADDR ports.
func checkScrapeAnnotations(o object, d *appsv1.Deployment, metricsPorts []int, p *problems) {
	ann := d.Spec.Template.Annotations
	scrape := ann["prometheus.io/scrape"] == "true"
	if isService(d.Name) {
		if len(metricsPorts) == 0 {
			p.addf("%s: no container sets a valid METRICS_ADDR: scrapers cannot hold the admin JWT /metrics needs on HTTP_ADDR once JWT_SECRET is set", o)
		}
		if !scrape {
			p.addf(`%s: pod template annotation prometheus.io/scrape must be "true"`, o)
		}
	}
	if !scrape || len(metricsPorts) == 0 {
		return
	}
	want := strconv.Itoa(metricsPorts[0])
	if got, ok := ann["prometheus.io/port"]; !ok {
		p.addf("%s: pod template annotation prometheus.io/port is required, want %q (METRICS_ADDR)", o, want)
	} else if n, err := strconv.Atoi(got); err != nil || !slices.Contains(metricsPorts, n) {
		p.addf("%s: pod template annotation prometheus.io/port %q, want %q (METRICS_ADDR)", o, got, want)
	}
	if path, ok := ann["prometheus.io/path"]; ok && path != "/metrics" {
		p.addf("%s: pod template annotation prometheus.io/path %q, want /metrics", o, path)
	}
}

func checkProbe(co, field string, pr *corev1.Probe, path string, c corev1.Container, p *problems) {
	if pr == nil {
		p.addf("%s: %s is required", co, field)
		return
	}
	if pr.HTTPGet == nil {
		p.addf("%s: %s must be an httpGet probe", co, field)
		return
	}
	if path != "" && pr.HTTPGet.Path != path {
		p.addf("%s: %s path %q, want %q", co, field, pr.HTTPGet.Path, path)
	}
	if !portDeclared(pr.HTTPGet.Port, c) {
		p.addf("%s: %s port %s is not a declared container port", co, field, pr.HTTPGet.Port.String())
	}
}

// isMetricsPort reports whether port (a name or a number) is c's METRICS_ADDR listener.
func isMetricsPort(port intstr.IntOrString, c corev1.Container, idx index) bool {
	if port.Type == intstr.String && port.StrVal == metricsPortName {
		return true
	}
	mp, ok := metricsAddr(c, idx)
	if !ok {
		return false
	}
	if port.Type == intstr.Int {
		return int(port.IntVal) == mp
	}
	return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal && int(cp.ContainerPort) == mp })
}

func portDeclared(port intstr.IntOrString, c corev1.Container) bool {
	return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
		if port.Type == intstr.String {
			return cp.Name == port.StrVal
		}
		return cp.ContainerPort == port.IntVal
	})
}

// containerEnv resolves the literal environment a container gets: envFrom sources in
// order (a later source wins), then env (wins over envFrom).
func containerEnv(c corev1.Container, idx index) map[string]string {
	env := map[string]string{}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			if cm := idx.configMaps[src.ConfigMapRef.Name]; cm != nil {
				for k, v := range cm.Data {
					env[src.Prefix+k] = v
				}
			}
		case src.SecretRef != nil:
			if s := idx.secrets[src.SecretRef.Name]; s != nil {
				for k, v := range s.StringData {
					env[src.Prefix+k] = v
				}
				for k, v := range s.Data {
					env[src.Prefix+k] = string(v)
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else {
			delete(env, e.Name)
		}
	}
	return env
}

func checkJob(o object, j *batchv1.Job, idx index, p *problems) {
	rp := j.Spec.Template.Spec.RestartPolicy
	if rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
		p.addf("%s: restartPolicy must be Never or OnFailure, got %q", o, rp)
	}
	if j.Spec.BackoffLimit == nil {
		p.addf("%s: backoffLimit must be set", o)
	}
	checkPodSpec(o, j.Spec.Template.Spec, idx, p)
}

// checkPodSpec enforces what every pod here must have: images pinned, resources, and
// the "restricted" Pod Security Standard (the namespace enforces it).
func checkPodSpec(o object, spec corev1.PodSpec, idx index, p *problems) {
	if len(spec.Containers) == 0 {
		p.addf("%s: at least one container is required", o)
	}
	psc := spec.SecurityContext
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	podSeccomp := psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		p.addf("%s: runAsUser 0 (root)", o)
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			p.addf("%s: volume %q: hostPath is not allowed", o, v.Name)
		}
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	names := map[string]bool{}
	for _, c := range all {
		co := fmt.Sprintf("%s container %q", o, c.Name)
		for _, e := range validation.IsDNS1123Label(c.Name) {
			p.addf("%s: name: %s", co, e)
		}
		if names[c.Name] {
			p.addf("%s: duplicate container name", co)
		}
		names[c.Name] = true
		checkImage(co, c.Image, p)
		checkResources(co, c.Resources, p)
		sc := c.SecurityContext
		if sc == nil {
			p.addf("%s: securityContext is required", co)
			continue
		}
		// A container's own setting overrides the pod's.
		nonRoot := podNonRoot
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if !nonRoot {
			p.addf("%s: runAsNonRoot must be true (pod or container)", co)
		}
		seccomp := podSeccomp
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		}
		if !seccomp {
			p.addf("%s: seccompProfile RuntimeDefault is required (pod or container)", co)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			p.addf("%s: runAsUser 0 (root)", co)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.addf("%s: allowPrivilegeEscalation must be false", co)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p.addf("%s: readOnlyRootFilesystem must be true", co)
		}
		if sc.Privileged != nil && *sc.Privileged {
			p.addf("%s: privileged is not allowed", co)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			p.addf("%s: capabilities must drop ALL", co)
		}
		for _, cp := range c.Ports {
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				p.addf("%s: containerPort %d out of range", co, cp.ContainerPort)
			}
			if cp.Name != "" {
				for _, e := range validation.IsValidPortName(cp.Name) {
					p.addf("%s: port name %q: %s", co, cp.Name, e)
				}
			}
		}
		checkEnvRefs(co, c, idx, p)
	}
}

func checkImage(co, image string, p *problems) {
	if image == "" {
		p.addf("%s: image is required", co)
		return
	}
	if strings.Contains(image, "@sha256:") {
		return
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" || tag == "latest" {
		p.addf("%s: image %q must carry an explicit tag other than latest", co, image)
	}
}

func checkResources(co string, r corev1.ResourceRequirements, p *problems) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := r.Requests[name]; !ok || q.IsZero() {
			p.addf("%s: resources.requests.%s is required", co, name)
		}
	}
	lim, ok := r.Limits[corev1.ResourceMemory]
	if !ok || lim.IsZero() {
		p.addf("%s: resources.limits.memory is required", co)
		return
	}
	if req, ok := r.Requests[corev1.ResourceMemory]; ok && req.Cmp(lim) > 0 {
		p.addf("%s: memory request %s exceeds limit %s", co, req.String(), lim.String())
	}
}

func checkEnvRefs(co string, c corev1.Container, idx index, p *problems) {
	for _, src := range c.EnvFrom {
		if r := src.ConfigMapRef; r != nil && idx.configMaps[r.Name] == nil && (r.Optional == nil || !*r.Optional) {
			p.addf("%s: envFrom ConfigMap %q does not exist", co, r.Name)
		}
		if r := src.SecretRef; r != nil && idx.secrets[r.Name] == nil && (r.Optional == nil || !*r.Optional) {
			p.addf("%s: envFrom Secret %q does not exist", co, r.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			ok := false
			if cm := idx.configMaps[r.Name]; cm != nil {
				_, ok = cm.Data[r.Key]
			}
			if !ok && (r.Optional == nil || !*r.Optional) {
				p.addf("%s: env %s: ConfigMap key %s/%s does not exist", co, e.Name, r.Name, r.Key)
			}
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil {
			s := idx.secrets[r.Name]
			ok := false
			if s != nil {
				_, ok1 := s.StringData[r.Key]
				_, ok2 := s.Data[r.Key]
				ok = ok1 || ok2
			}
			if !ok && (r.Optional == nil || !*r.Optional) {
				p.addf("%s: env %s: Secret key %s/%s does not exist", co, e.Name, r.Name, r.Key)
			}
		}
	}
}

func matchingDeployments(sel *metav1.LabelSelector, idx index) []*appsv1.Deployment {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range idx.deployments {
		if s.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

func checkService(o object, svc *corev1.Service, idx index, p *problems) {
	if len(svc.Spec.Selector) == 0 {
		p.addf("%s: selector is required", o)
		return
	}
	targets := matchingDeployments(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, idx)
	if len(targets) == 0 {
		p.addf("%s: selector matches no Deployment's pods", o)
		return
	}
	if len(svc.Spec.Ports) == 0 {
		p.addf("%s: at least one port is required", o)
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Port < 1 || sp.Port > 65535 {
			p.addf("%s: port %d out of range", o, sp.Port)
		}
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		for _, d := range targets {
			if !slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return portDeclared(target, c) }) {
				p.addf("%s: targetPort %s is not a container port of Deployment %q", o, target.String(), d.Name)
			}
			if slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return isMetricsPort(target, c, idx) }) {
				p.addf("%s: port %d targets the metrics port of Deployment %q: /metrics is unauthenticated there, keep it off the Service (Prometheus scrapes the pods)",
					o, sp.Port, d.Name)
			}
		}
	}
}

func checkHPA(o object, h *autoscalingv2.HorizontalPodAutoscaler, idx index, p *problems) {
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || !slices.ContainsFunc(idx.deployments, func(d *appsv1.Deployment) bool { return d.Name == ref.Name }) {
		p.addf("%s: scaleTargetRef %s %q is not a Deployment here", o, ref.Kind, ref.Name)
	}
	if h.Spec.MaxReplicas < 1 || (h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas) {
		p.addf("%s: need 1 <= minReplicas <= maxReplicas", o)
	}
	if len(h.Spec.Metrics) == 0 {
		p.addf("%s: at least one metric is required", o)
	}
}
