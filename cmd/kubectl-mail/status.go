package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// clusterSummary is one MailCluster at a glance.
type clusterSummary struct {
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	Hostname      string `json:"hostname"`
	ReadyReplicas int32  `json:"readyReplicas"`
	Replicas      int32  `json:"replicas"`
	Ready         state  `json:"ready"`
	Degraded      state  `json:"degraded"`
	Domains       int32  `json:"domains"`
	Mailboxes     int32  `json:"mailboxes"`
	SelfSigned    bool   `json:"selfSignedCertificate"`
}

// state is one condition as the summary shows it.
type state struct {
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// problem is a group of objects of one kind in the same trouble, such as Mailboxes whose logins
// are disabled.
type problem struct {
	Kind    string         `json:"kind"`
	State   string         `json:"state"`
	Objects []objectReason `json:"objects"`
}

type objectReason struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

type statusReport struct {
	Clusters []clusterSummary `json:"clusters"`
	Problems []problem        `json:"problems"`
}

func newStatusCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Mail clusters at a glance, and the Mailboxes and MailAliases that are not Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			report, err := collectStatus(cmd.Context(), c, ns)
			if err != nil {
				return err
			}
			if o.output != outputTable {
				return printStructured(cmd.OutOrStdout(), o.output, report)
			}
			printStatus(cmd.OutOrStdout(), report, o.allNamespaces)
			return nil
		},
	}
	o.addAllNamespacesFlag(cmd)
	return cmd
}

func collectStatus(ctx context.Context, c client.Client, ns string) (statusReport, error) {
	var clusters mailv1alpha1.MailClusterList
	var mailboxes mailv1alpha1.MailboxList
	var aliases mailv1alpha1.MailAliasList
	for _, l := range []client.ObjectList{&clusters, &mailboxes, &aliases} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return statusReport{}, listError(err, ns)
		}
	}
	report := statusReport{Clusters: []clusterSummary{}, Problems: []problem{}}
	for i := range clusters.Items {
		report.Clusters = append(report.Clusters, summarize(&clusters.Items[i]))
	}
	report.Problems = append(report.Problems, mailboxProblems(mailboxes.Items, ns == "")...)
	report.Problems = append(report.Problems, aliasProblems(aliases.Items, ns == "")...)
	return report, nil
}

// listError says what to check when listing kubemail's objects fails.
func listError(err error, ns string) error {
	where := fmt.Sprintf("namespace %q", ns)
	if ns == "" {
		where = "any namespace"
	}
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("the API server does not know kubemail's kinds: install the CRDs (helm install, or make deploy): %w", err)
	}
	return fmt.Errorf("listing kubemail objects in %s: %w (check --context and that you may list them: kubectl auth can-i list mailclusters)", where, err)
}

func summarize(mc *mailv1alpha1.MailCluster) clusterSummary {
	s := clusterSummary{
		Namespace: mc.Namespace, Name: mc.Name, Hostname: string(mc.Spec.Hostname),
		ReadyReplicas: mc.Status.ReadyReplicas, Replicas: 1,
		Ready:    conditionState(mc.Status.Conditions, mailv1alpha1.ConditionReady),
		Degraded: state{Status: "-"},
		Domains:  mc.Status.Domains, Mailboxes: mc.Status.Mailboxes,
		SelfSigned: meta.IsStatusConditionTrue(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate),
	}
	if meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionDegraded) != nil {
		s.Degraded = conditionState(mc.Status.Conditions, mailv1alpha1.ConditionDegraded)
	}
	if mc.Spec.Replicas != nil {
		s.Replicas = *mc.Spec.Replicas
	}
	return s
}

func conditionState(conds []metav1.Condition, typ string) state {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return state{Status: "Unknown", Reason: "NoStatusYet", Message: "the operator has not reported yet; is it running?"}
	}
	return state{Status: string(c.Status), Reason: c.Reason, Message: c.Message}
}

// mailboxProblems groups the Mailboxes that are not Ready by their Ready reason, and those whose
// logins are not enabled by their login state.
func mailboxProblems(items []mailv1alpha1.Mailbox, qualify bool) []problem {
	notReady := map[string][]objectReason{}
	for i := range items {
		mb := &items[i]
		name := displayName(mb.Namespace, mb.Name, qualify)
		reason := conditionState(mb.Status.Conditions, mailv1alpha1.ConditionReady)
		if mb.Status.Login != "" && mb.Status.Login != mailv1alpha1.LoginEnabled {
			notReady[string(mb.Status.Login)] = append(notReady[string(mb.Status.Login)], objectReason{name, reason.Reason})
		} else if reason.Status != string(metav1.ConditionTrue) {
			notReady["NotReady"] = append(notReady["NotReady"], objectReason{name, reason.Reason})
		}
	}
	return grouped("Mailbox", notReady)
}

func aliasProblems(items []mailv1alpha1.MailAlias, qualify bool) []problem {
	notReady := map[string][]objectReason{}
	for i := range items {
		a := &items[i]
		if reason := conditionState(a.Status.Conditions, mailv1alpha1.ConditionReady); reason.Status != string(metav1.ConditionTrue) {
			notReady["NotReady"] = append(notReady["NotReady"], objectReason{displayName(a.Namespace, a.Name, qualify), reason.Reason})
		}
	}
	return grouped("MailAlias", notReady)
}

func grouped(kind string, byState map[string][]objectReason) []problem {
	var out []problem
	for st, objs := range byState {
		sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
		out = append(out, problem{Kind: kind, State: st, Objects: objs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].State < out[j].State })
	return out
}

func displayName(ns, name string, qualify bool) string {
	if qualify {
		return ns + "/" + name
	}
	return name
}

func printStatus(w io.Writer, r statusReport, allNamespaces bool) {
	if len(r.Clusters) == 0 {
		fmt.Fprintln(w, "No MailClusters found.")
	} else {
		printClusterTable(w, r.Clusters, allNamespaces)
		printClusterConditions(w, r.Clusters, allNamespaces)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "\nEvery Mailbox and MailAlias is Ready.")
		return
	}
	fmt.Fprintln(w)
	for _, p := range r.Problems {
		var objs []string
		for _, o := range p.Objects {
			objs = append(objs, fmt.Sprintf("%s (%s)", o.Name, o.Reason))
		}
		fmt.Fprintf(w, "%d %s %s: %s\n", len(p.Objects), plural(p.Kind, len(p.Objects)), p.State, strings.Join(objs, ", "))
	}
}

func printClusterTable(w io.Writer, clusters []clusterSummary, allNamespaces bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	header := "NAME\tHOSTNAME\tREPLICAS\tREADY\tDEGRADED\tDOMAINS\tMAILBOXES\tCERTIFICATE"
	if allNamespaces {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, c := range clusters {
		cert := "provided"
		if c.SelfSigned {
			cert = "self-signed"
		}
		row := fmt.Sprintf("%s\t%s\t%d/%d\t%s\t%s\t%d\t%d\t%s", c.Name, c.Hostname, c.ReadyReplicas, c.Replicas,
			withReason(c.Ready), withReason(c.Degraded), c.Domains, c.Mailboxes, cert)
		if allNamespaces {
			row = c.Namespace + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// printClusterConditions prints the message of every cluster that is not Ready or is Degraded:
// the table has no room for it and it says what to do.
func printClusterConditions(w io.Writer, clusters []clusterSummary, allNamespaces bool) {
	for _, c := range clusters {
		name := displayName(c.Namespace, c.Name, allNamespaces)
		if c.Ready.Status != string(metav1.ConditionTrue) && c.Ready.Message != "" {
			fmt.Fprintf(w, "%s: not Ready (%s): %s\n", name, c.Ready.Reason, c.Ready.Message)
		}
		if c.Degraded.Status == string(metav1.ConditionTrue) && c.Degraded.Message != "" {
			fmt.Fprintf(w, "%s: Degraded (%s): %s\n", name, c.Degraded.Reason, c.Degraded.Message)
		}
	}
}

func withReason(s state) string {
	if s.Reason == "" {
		return s.Status
	}
	return s.Status + " (" + s.Reason + ")"
}

func plural(kind string, n int) string {
	switch {
	case n == 1:
		return kind
	case strings.HasSuffix(kind, "s"):
		return kind + "es"
	}
	return kind + "s"
}
