package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

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

// checkDockerfiles checks each service's Dockerfile for what the images promise: a Go
// build stage producing a static binary of that service, and a small final stage that
// runs it as a non-root user on the service's port. (Building needs a Docker engine:
// make images.)
func checkDockerfiles(root string, p *problems) int {
	n := 0
	for _, s := range services {
		rel := filepath.ToSlash(filepath.Join("deployments", s.Name, "Dockerfile"))
		raw, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			p.addf("%s: %v", rel, err)
			continue
		}
		n++
		ins := parseDockerfile(string(raw))
		var froms []int
		for i, in := range ins {
			if in.Cmd == "FROM" {
				froms = append(froms, i)
			}
		}
		if len(froms) < 2 {
			p.addf("%s: must be multi-stage (a build stage and a small final stage)", rel)
			continue
		}
		build, final := ins[froms[0]:froms[len(froms)-1]], ins[froms[len(froms)-1]:]
		if !strings.Contains(build[0].Args, "golang:") {
			p.addf("%s: build stage should start FROM golang:<version>", rel)
		}
		if strings.Contains(final[0].Args, "golang:") {
			p.addf("%s: final stage must not be the Go toolchain image", rel)
		}
		buildCmd := fmt.Sprintf("./services/%s", s.Name)
		if !hasInstr(build, "RUN", "go build") || !hasInstr(build, "RUN", buildCmd) || !hasInstr(build, "RUN", "CGO_ENABLED=0") {
			p.addf("%s: build stage must run CGO_ENABLED=0 go build ... %s", rel, buildCmd)
		}
		user := lastArgs(final, "USER")
		if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
			p.addf("%s: final stage must set a non-root USER, got %q", rel, user)
		}
		if lastArgs(final, "ENTRYPOINT") == "" {
			p.addf("%s: final stage needs an ENTRYPOINT", rel)
		}
		if !hasInstr(final, "EXPOSE", fmt.Sprint(s.Port)) {
			p.addf("%s: final stage must EXPOSE %d", rel, s.Port)
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
