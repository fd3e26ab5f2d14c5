package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dockerfile is the one Dockerfile every service image is built from, with
// --build-arg SERVICE=<service>.
const dockerfile = "deployments/Dockerfile"

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Cmd  string // upper-case keyword
	Args string
}

func parseDockerfile(raw string) []instruction {
	var out []instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)})
	}
	for _, line := range strings.Split(raw, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		flush()
	}
	flush()
	return out
}

// stage is one FROM ... of a Dockerfile as a build with given build arguments sees it.
type stage struct {
	Name string // the AS name, lower-case ("" when unnamed)
	Base string // image or earlier stage, build arguments substituted
	// Parent is the index of the earlier stage Base names, or -1 when Base is an image.
	Parent int
	Ins    []instruction // the stage's instructions after FROM, its ARGs substituted
}

// expandedIn are the instructions whose arguments see the stage's ARGs: the ones Docker
// substitutes itself, and RUN, whose shell gets the ARGs as environment variables.
// ENTRYPOINT and CMD in exec form see none.
var expandedIn = map[string]bool{
	"ADD": true, "COPY": true, "ENV": true, "EXPOSE": true, "LABEL": true, "RUN": true,
	"STOPSIGNAL": true, "USER": true, "VOLUME": true, "WORKDIR": true,
}

// stagesFor splits the Dockerfile into stages as `docker build --build-arg k=v ...` sees
// them (BuildKit): ARGs before the first FROM are substituted in FROM lines only; an ARG
// inside a stage (with the global value or its own default) in that stage and the stages
// based on it.
func stagesFor(ins []instruction, buildArgs map[string]string) []stage {
	// arg evaluates `ARG name[=default]`: the build argument, else the default (which sees
	// scope), else what inherit holds (a stage's ARG without default takes the global one).
	arg := func(decl string, scope, inherit map[string]string) (string, string) {
		name, def, hasDef := strings.Cut(decl, "=")
		name = strings.TrimSpace(name)
		if v, ok := buildArgs[name]; ok {
			return name, v
		}
		if hasDef {
			return name, os.Expand(strings.Trim(def, `"`), func(k string) string { return scope[k] })
		}
		return name, inherit[name]
	}
	global := map[string]string{}
	var stages []stage
	var vars map[string]string        // the current stage's ARGs
	var stageVars []map[string]string // each stage's ARGs at its end
	for _, in := range ins {
		switch {
		case in.Cmd == "FROM":
			var fields []string
			for _, f := range strings.Fields(os.Expand(in.Args, func(k string) string { return global[k] })) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			st := stage{Parent: -1}
			if len(fields) > 0 {
				st.Base = fields[0]
			}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.Name = strings.ToLower(fields[2])
			}
			for i := len(stages) - 1; i >= 0; i-- {
				if st.Base != "" && stages[i].Name == strings.ToLower(st.Base) {
					st.Parent = i
					break
				}
			}
			stages = append(stages, st)
			vars = map[string]string{}
			if st.Parent >= 0 {
				for k, v := range stageVars[st.Parent] {
					vars[k] = v
				}
			}
			stageVars = append(stageVars, vars)
		case in.Cmd == "ARG" && len(stages) == 0:
			k, v := arg(in.Args, global, nil)
			global[k] = v
		case in.Cmd == "ARG":
			k, v := arg(in.Args, vars, global)
			vars[k] = v
		case len(stages) == 0:
			// Only ARG may precede the first FROM; docker build rejects anything else.
		default:
			if expandedIn[in.Cmd] {
				in.Args = os.Expand(in.Args, func(k string) string { return vars[k] })
			}
			cur := &stages[len(stages)-1]
			cur.Ins = append(cur.Ins, in)
		}
	}
	return stages
}

// chain is the final stage followed by the stages it derives from, nearest first.
func chain(stages []stage) []stage {
	var out []stage
	for i := len(stages) - 1; i >= 0; i = stages[i].Parent {
		out = append(out, stages[i])
	}
	return out
}

// checkDockerfiles checks deployments/Dockerfile for what each service's image promises,
// resolving it as `docker build --build-arg SERVICE=<service>` does: a Go build stage
// producing a static binary of that service, and a small final image that runs it as a
// non-root user on the service's port. It returns the number of images checked.
// (Building needs a Docker engine: make images.)
func checkDockerfiles(root string, p *problems) int {
	raw, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dockerfile)))
	if err != nil {
		p.addf("%s: %v", dockerfile, err)
		return 0
	}
	ins := parseDockerfile(string(raw))
	if froms := countInstr(ins, "FROM"); froms < 2 {
		p.addf("%s: must be multi-stage (a build stage and a small final stage), has %d FROM", dockerfile, froms)
		return 0
	}
	n := 0
	for _, s := range services {
		n++
		where := fmt.Sprintf("%s (SERVICE=%s)", dockerfile, s.Name)
		stages := stagesFor(ins, map[string]string{"SERVICE": s.Name})
		resolved := true
		for _, st := range stages {
			switch {
			case st.Base == "":
				p.addf("%s: FROM with an empty base (a variable in FROM needs an ARG before the first FROM)", where)
				resolved = false
			case st.Parent < 0 && !strings.ContainsAny(st.Base, ":@"):
				p.addf("%s: FROM %s is neither an earlier stage nor an image with a tag", where, st.Base)
				resolved = false
			}
		}
		if !resolved {
			continue // what the image holds is unknown
		}

		buildCmd := "./services/" + s.Name
		build := -1
		for i, st := range stages {
			if strings.Contains(st.Base, "golang:") && hasInstr(st.Ins, "RUN", "go build") {
				build = i
				if !hasInstr(st.Ins, "RUN", buildCmd) || !hasInstr(st.Ins, "RUN", "CGO_ENABLED=0") {
					p.addf("%s: build stage must run CGO_ENABLED=0 go build ... %s (a variable in RUN needs an ARG in that stage)", where, buildCmd)
				}
				break
			}
		}
		if build < 0 {
			p.addf("%s: needs a build stage FROM golang:<version> that runs go build", where)
		}

		final := chain(stages)
		var all []instruction // the final image's instructions, oldest first
		for i := len(final) - 1; i >= 0; i-- {
			all = append(all, final[i].Ins...)
		}
		if base := final[len(final)-1].Base; strings.Contains(base, "golang:") {
			p.addf("%s: the final image must not be the Go toolchain image %s (build in one stage, run on a small base)", where, base)
		} else if build >= 0 && stages[build].Name != "" && !hasInstr(all, "COPY", "--from="+stages[build].Name) {
			p.addf("%s: the final image must COPY the binary --from=%s", where, stages[build].Name)
		}
		user := lastArgs(all, "USER")
		if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
			p.addf("%s: final image must set a non-root USER, got %q", where, user)
		}
		if ep := lastArgs(all, "ENTRYPOINT"); !strings.Contains(ep, "/"+s.Name+`"`) && !strings.HasSuffix(ep, "/"+s.Name) {
			p.addf("%s: final image's ENTRYPOINT must run the %s binary, got %q", where, s.Name, ep)
		}
		if !hasInstr(all, "EXPOSE", fmt.Sprint(s.Port)) {
			p.addf("%s: final image must EXPOSE %d", where, s.Port)
		}
		for _, in := range all {
			if in.Cmd == "ENV" && strings.HasPrefix(in.Args, "HTTP_ADDR") {
				if want := fmt.Sprintf(":%d", s.Port); !strings.HasSuffix(in.Args, want) {
					p.addf("%s: ENV %s, want port %d", where, in.Args, s.Port)
				}
			}
		}
	}
	return n
}

func countInstr(ins []instruction, cmd string) int {
	n := 0
	for _, in := range ins {
		if in.Cmd == cmd {
			n++
		}
	}
	return n
}

func hasInstr(ins []instruction, cmd, substr string) bool {
	for _, in := range ins {
		if in.Cmd == cmd && strings.Contains(in.Args, substr) {
			return true
		}
	}
	return false
}

func lastArgs(ins []instruction, cmd string) string {
	out := ""
	for _, in := range ins {
		if in.Cmd == cmd {
			out = in.Args
		}
	}
	return out
}
