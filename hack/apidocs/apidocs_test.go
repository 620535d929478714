package main

import (
	"bytes"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// A spec schema in the shape controller-gen writes, covering each case the walker treats
// differently.
const specSchema = `
type: object
required: [address, members]
x-kubernetes-validations:
- rule: "!(self.address in self.members)"
  message: an alias must not list itself as a member
properties:
  address:
    type: string
    maxLength: 254
    minLength: 6
    x-kubernetes-validations:
    - rule: self == oldSelf
      message: address is immutable; create a new MailAlias instead
    - rule: self.matches('^[^@]+@[^@]+$')
      message: must be an email address
  members:
    type: array
    minItems: 1
    maxItems: 1000
    x-kubernetes-list-type: set
    items:
      type: string
      maxLength: 254
  storage:
    type: object
    default: {}
    properties:
      size:
        anyOf: [{type: integer}, {type: string}]
        default: 10Gi
        pattern: '` + quantityPattern + `'
        x-kubernetes-int-or-string: true
  relay:
    type: object
    properties:
      port: {type: integer, format: int32, default: 587, minimum: 1, maximum: 65535}
      tls: {type: string, default: StartTLS, enum: [StartTLS, Implicit, None]}
  annotations:
    type: object
    additionalProperties: {type: string}
  affinity:
    type: object
    description: Affinity of the pods.
    properties:
      nodeAffinity: {type: object}
      podAffinity: {type: object}
      podAntiAffinity: {type: object}
  endpoints:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [name]
    items:
      type: object
      required: [name]
      properties:
        name: {type: string}
        port: {type: integer}
`

func TestChildFields(t *testing.T) {
	var s apiextv1.JSONSchemaProps
	if err := yaml.Unmarshal([]byte(specSchema), &s); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range childFields("spec", s) {
		got = append(got, strings.Join([]string{f.Path, f.Type, f.Default, strings.Join(f.Validation, "; ")}, " | "))
	}
	want := []string{
		"spec.address | string |  | required; immutable; 6 to 254 characters; must be an email address",
		"spec.affinity | Affinity |  | ", // a core type: no rows for its sub-fields
		"spec.annotations | map[string]string |  | ",
		"spec.endpoints | []object |  | one entry per `name`",
		"spec.endpoints[].name | string |  | required",
		"spec.endpoints[].port | integer |  | ",
		"spec.members | []string |  | required; 1 to 1000 items; no duplicates; each item: at most 254 characters",
		"spec.relay | object |  | ",
		"spec.relay.port | integer | 587 | 1 to 65535",
		"spec.relay.tls | string | StartTLS | one of `StartTLS`, `Implicit`, `None`",
		"spec.storage | object | {} | ",
		"spec.storage.size | quantity | 10Gi | ", // the quantity pattern is not shown
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rules := constraints(s); len(rules) != 1 || rules[0] != "an alias must not list itself as a member" {
		t.Errorf("rules across fields = %q", rules)
	}
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, table, text string }{
		{"record at <selector>._domainkey", `record at \<selector\>.\_domainkey`, `record at \<selector\>.\_domainkey`},
		{"keys `a|b` or c|d", "keys `a\\|b` or c\\|d", "keys `a|b` or c\\|d"},
		{"letters or *_{|}~-", `letters or \*\_{\|}~-`, `letters or \*\_{\|}~-`},
		{"a stray ` tick", "a stray \\` tick", "a stray \\` tick"},
	} {
		if got := escape(tc.in, true); got != tc.table {
			t.Errorf("escape(%q, table) = %q, want %q", tc.in, got, tc.table)
		}
		if got := escape(tc.in, false); got != tc.text {
			t.Errorf("escape(%q, text) = %q, want %q", tc.in, got, tc.text)
		}
	}
}

// The page is checked into git and compared by make verify, so the same CRDs must always give
// the same bytes; schema properties are Go maps, whose order changes from run to run.
func TestRenderIsStable(t *testing.T) {
	kinds, err := loadKinds("../../config/crd/bases", "../../config/samples")
	if err != nil {
		t.Fatal(err)
	}
	first, err := render(kinds)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		kinds, err := loadKinds("../../config/crd/bases", "../../config/samples")
		if err != nil {
			t.Fatal(err)
		}
		again, err := render(kinds)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("rendering the same CRDs twice gave different pages")
		}
	}
	for _, want := range []string{"`spec.storage.size`", "`status.endpoints[].port`", "`[]Toleration`"} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
}
