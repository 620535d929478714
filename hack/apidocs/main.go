// Command apidocs writes docs/api.md, the user-facing API reference, from the CRDs in
// config/crd/bases, the samples in config/samples and the hand-written prose in api.md.tmpl.
// `make manifests` runs it right after controller-gen, so the reference never drifts from the CRDs.
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed api.md.tmpl
var pageTemplate string

// kindOrder is the order a user creates the kinds in; the reference follows it. Kinds not
// listed come after, sorted by name.
var kindOrder = []string{"MailCluster", "MailDomain", "Mailbox", "MailAlias"}

// kindDoc is everything the template shows about one kind.
type kindDoc struct {
	Kind, Group, Version    string
	Plural, Singular, Scope string
	ShortNames, Categories  []string
	Subresources            []string // already Markdown
	Description             string
	Columns                 []apiextv1.CustomResourceColumnDefinition
	SpecDescription         string
	SpecRules               []string // rules on spec as a whole, such as "set secretName or issuerRef, not both"
	Spec, Status            []field
	SampleFile, Sample      string
}

func main() {
	crdDir := flag.String("crds", "config/crd/bases", "directory of CRD YAML files")
	sampleDir := flag.String("samples", "config/samples", "directory of mail_<version>_<kind>.yaml samples")
	out := flag.String("out", "docs/api.md", "file to write")
	flag.Parse()

	kinds, err := loadKinds(*crdDir, *sampleDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
	page, err := render(kinds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, page, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
}

func loadKinds(crdDir, sampleDir string) ([]kindDoc, error) {
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s (run from the repository root, or pass -crds)", crdDir)
	}
	var kinds []kindDoc
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		k, err := describe(crd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		k.SampleFile = filepath.ToSlash(filepath.Join(sampleDir, fmt.Sprintf("%s_%s_%s.yaml",
			strings.SplitN(k.Group, ".", 2)[0], k.Version, strings.ToLower(k.Kind))))
		sample, err := os.ReadFile(k.SampleFile)
		if err != nil {
			return nil, fmt.Errorf("every kind needs a sample to show: %w", err)
		}
		k.Sample = string(sample)
		if !strings.HasSuffix(k.Sample, "\n") {
			k.Sample += "\n"
		}
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b kindDoc) int {
		ia, ib := rank(a.Kind), rank(b.Kind)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return kinds, nil
}

func rank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// describe documents the storage version of a CRD, the one users read back from the API server.
func describe(crd apiextv1.CustomResourceDefinition) (kindDoc, error) {
	i := slices.IndexFunc(crd.Spec.Versions, func(v apiextv1.CustomResourceDefinitionVersion) bool { return v.Storage })
	if i < 0 {
		return kindDoc{}, fmt.Errorf("CRD %s has no storage version", crd.Name)
	}
	v := crd.Spec.Versions[i]
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return kindDoc{}, fmt.Errorf("CRD %s version %s has no schema", crd.Name, v.Name)
	}
	root := *v.Schema.OpenAPIV3Schema
	k := kindDoc{
		Kind:        crd.Spec.Names.Kind,
		Group:       crd.Spec.Group,
		Version:     v.Name,
		Plural:      crd.Spec.Names.Plural,
		Singular:    crd.Spec.Names.Singular,
		Scope:       string(crd.Spec.Scope),
		ShortNames:  crd.Spec.Names.ShortNames,
		Categories:  crd.Spec.Names.Categories,
		Description: oneLine(root.Description),
		Columns:     v.AdditionalPrinterColumns,
	}
	if sr := v.Subresources; sr != nil {
		if sr.Status != nil {
			k.Subresources = append(k.Subresources, "`status`")
		}
		if sr.Scale != nil {
			k.Subresources = append(k.Subresources, fmt.Sprintf("`scale` (`kubectl scale` sets `%s`)", sr.Scale.SpecReplicasPath))
		}
	}
	spec, ok := root.Properties["spec"]
	if !ok {
		return kindDoc{}, fmt.Errorf("CRD %s has no spec", crd.Name)
	}
	k.SpecDescription = oneLine(spec.Description)
	k.SpecRules = constraints(spec)
	k.Spec = childFields("spec", spec)
	if status, ok := root.Properties["status"]; ok {
		k.Status = childFields("status", status)
	}
	return k, nil
}

func render(kinds []kindDoc) ([]byte, error) {
	t, err := template.New("api.md").Funcs(template.FuncMap{
		"text":  func(s string) string { return escape(s, false) },
		"cell":  func(s string) string { return escape(s, true) },
		"cells": cells,
		"code":  code,
		"codes": codes,
		"fence": fence,
		"shown": shown,
		"describe": func(f field) string {
			d := escape(f.Description, true)
			if f.CoreType != nil {
				d = strings.TrimSpace(d + " Standard Kubernetes `" + f.CoreType.Name +
					"`; see the [Kubernetes API reference](" + f.CoreType.URL + ").")
			}
			return d
		},
		"join":  strings.Join,
		"lower": strings.ToLower,
	}).Parse(pageTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, kinds); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
