package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// field is one row of a kind's field table. Every string is plain text; the renderer escapes it.
type field struct {
	Path        string   // full path from the object root, e.g. spec.storage.size or status.endpoints[].port
	Type        string   // string, integer, quantity, []string, map[string]string, object, or a core type name
	Default     string   // the schema default, compact JSON with strings unquoted; empty when none
	Validation  []string // one entry per constraint, in a fixed order
	Description string   // the schema description on one line
	CoreType    *coreType
}

// coreType is a Kubernetes type embedded in our API whose sub-fields belong to the Kubernetes
// documentation, not ours. It is recognised by property names, because a CRD schema keeps the
// shape of a Go type but not its name.
type coreType struct {
	Name string
	URL  string
	Keys []string // properties a schema must have to be this type
}

const (
	podRef       = "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/"
	conditionRef = "https://pkg.go.dev/k8s.io/apimachinery/pkg/apis/meta/v1#Condition"
)

var coreTypes = []coreType{
	{Name: "ResourceRequirements", URL: podRef, Keys: []string{"claims", "limits", "requests"}},
	{Name: "Affinity", URL: podRef, Keys: []string{"nodeAffinity", "podAffinity", "podAntiAffinity"}},
	{Name: "Toleration", URL: podRef, Keys: []string{"effect", "key", "operator", "tolerationSeconds", "value"}},
	{Name: "TopologySpreadConstraint", URL: podRef, Keys: []string{"labelSelector", "maxSkew", "topologyKey", "whenUnsatisfiable"}},
	{Name: "Condition", URL: conditionRef, Keys: []string{"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}},
}

// quantityPattern is the pattern controller-gen writes for resource.Quantity. Such fields are
// documented as "quantity" rather than by their regular expression.
const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

func matchCoreType(s *apiextv1.JSONSchemaProps) *coreType {
	if s == nil || s.Type != "object" {
		return nil
	}
	for i := range coreTypes {
		ok := true
		for _, k := range coreTypes[i].Keys {
			if _, has := s.Properties[k]; !has {
				ok = false
				break
			}
		}
		if ok {
			return &coreTypes[i]
		}
	}
	return nil
}

// childFields lists every field below s (not s itself), depth first, children sorted by name.
// Arrays of objects continue with "[]", e.g. status.endpoints[].host; core types stop the walk.
func childFields(path string, s apiextv1.JSONSchemaProps) []field {
	var out []field
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		out = append(out, walk(join(path, name), s.Properties[name], slices.Contains(s.Required, name))...)
	}
	return out
}

func walk(path string, s apiextv1.JSONSchemaProps, required bool) []field {
	f := field{
		Path:        path,
		Description: oneLine(s.Description),
		Default:     defaultValue(s.Default),
	}
	if required {
		f.Validation = append(f.Validation, "required")
	}
	item := itemSchema(s)
	if ct := matchCoreType(&s); ct != nil {
		f.Type, f.CoreType = ct.Name, ct
		return []field{f}
	}
	if ct := matchCoreType(item); ct != nil {
		f.Type, f.CoreType = "[]"+ct.Name, ct
		f.Validation = append(f.Validation, listConstraints(s)...)
		return []field{f}
	}
	f.Type = typeName(s)
	f.Validation = append(f.Validation, constraints(s)...)
	if item != nil && len(item.Properties) == 0 {
		for _, c := range constraints(*item) {
			f.Validation = append(f.Validation, "each item: "+c)
		}
	}
	out := []field{f}
	if len(s.Properties) > 0 {
		out = append(out, childFields(path, s)...)
	}
	if item != nil && len(item.Properties) > 0 {
		out = append(out, childFields(path+"[]", *item)...)
	}
	return out
}

func itemSchema(s apiextv1.JSONSchemaProps) *apiextv1.JSONSchemaProps {
	if s.Type == "array" && s.Items != nil {
		return s.Items.Schema
	}
	return nil
}

func typeName(s apiextv1.JSONSchemaProps) string {
	switch {
	case s.XIntOrString && s.Pattern == quantityPattern:
		return "quantity"
	case s.XIntOrString:
		return "integer or string"
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		return "[]" + typeName(*s.Items.Schema)
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		return "map[string]" + typeName(*s.AdditionalProperties.Schema)
	case s.Type == "string" && s.Format != "":
		return "string (" + s.Format + ")"
	case s.Type == "":
		return "any"
	}
	return s.Type
}

// constraints describes what the API server checks on one value, in a fixed order: immutability
// first because it matters most after creation, then schema keywords, then CEL rule messages in
// the order the CRD lists them.
func constraints(s apiextv1.JSONSchemaProps) []string {
	var out []string
	for _, r := range s.XValidations {
		if isImmutable(r) {
			out = append(out, "immutable")
		}
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			vals[i] = "`" + jsonValue(e.Raw) + "`"
		}
		out = append(out, "one of "+strings.Join(vals, ", "))
	}
	if r := numberRange(s); r != "" {
		out = append(out, r)
	}
	if r := countRange(s.MinLength, s.MaxLength, "character"); r != "" {
		out = append(out, r)
	}
	if s.Pattern != "" && s.Pattern != quantityPattern {
		out = append(out, "matches `"+s.Pattern+"`")
	}
	out = append(out, listConstraints(s)...)
	for _, r := range s.XValidations {
		if isImmutable(r) {
			continue
		}
		if r.Message != "" {
			out = append(out, r.Message)
		} else {
			out = append(out, "rule `"+r.Rule+"`")
		}
	}
	return out
}

func listConstraints(s apiextv1.JSONSchemaProps) []string {
	var out []string
	if r := countRange(s.MinItems, s.MaxItems, "item"); r != "" {
		out = append(out, r)
	}
	switch {
	case s.UniqueItems || (s.XListType != nil && *s.XListType == "set"):
		out = append(out, "no duplicates")
	case s.XListType != nil && *s.XListType == "map":
		keys := make([]string, len(s.XListMapKeys))
		for i, k := range s.XListMapKeys {
			keys[i] = "`" + k + "`"
		}
		out = append(out, "one entry per "+strings.Join(keys, " and "))
	}
	return out
}

func isImmutable(r apiextv1.ValidationRule) bool {
	return strings.Join(strings.Fields(r.Rule), "") == "self==oldSelf"
}

func numberRange(s apiextv1.JSONSchemaProps) string {
	lo, hi := "at least", "at most"
	if s.ExclusiveMinimum {
		lo = "greater than"
	}
	if s.ExclusiveMaximum {
		hi = "less than"
	}
	switch {
	case s.Minimum != nil && s.Maximum != nil && !s.ExclusiveMinimum && !s.ExclusiveMaximum:
		return number(*s.Minimum) + " to " + number(*s.Maximum)
	case s.Minimum != nil && s.Maximum != nil:
		return lo + " " + number(*s.Minimum) + ", " + hi + " " + number(*s.Maximum)
	case s.Minimum != nil:
		return lo + " " + number(*s.Minimum)
	case s.Maximum != nil:
		return hi + " " + number(*s.Maximum)
	}
	return ""
}

func countRange(lo, hi *int64, unit string) string {
	plural := func(n int64) string {
		if n == 1 {
			return unit
		}
		return unit + "s"
	}
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("%d to %d %s", *lo, *hi, plural(*hi))
	case lo != nil:
		return fmt.Sprintf("at least %d %s", *lo, plural(*lo))
	case hi != nil:
		return fmt.Sprintf("at most %d %s", *hi, plural(*hi))
	}
	return ""
}

func number(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func defaultValue(d *apiextv1.JSON) string {
	if d == nil {
		return ""
	}
	return jsonValue(d.Raw)
}

// jsonValue shows a JSON value as a user would write it in YAML: strings without quotes,
// everything else as compact JSON with sorted keys.
func jsonValue(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return string(raw)
	}
	return string(b)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
