//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// TestEndToEnd walks a user's path through a real cluster, one step after another; a step
// that fails ends the walk (later steps build on it) and dumps the cluster's state and logs.
func TestEndToEnd(t *testing.T) {
	s := newSuite(t)
	t.Cleanup(func() {
		if t.Failed() {
			s.dump()
		}
	})
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"HelmInstall", s.helmInstall},
		{"SamplesBecomeReady", s.samplesReady},
		{"MailFlows", s.mailFlows},
		{"MailboxUsageReported", s.usageReported},
		{"PasswordChange", s.passwordChange},
		{"PodDeletionKeepsMail", s.podDeletion},
		{"RollingUpdateLosesNothing", s.rollingUpdate},
		{"DeletionPolicy", s.deletionPolicy},
		{"LoadBalancerPending", s.loadBalancerPending},
		{"HelmUpgradeHandsOver", s.helmUpgradeHandsOver},
		{"ThreeReplicasServeEveryMailbox", s.scaleOut},
		{"ReplicaDeletionKeepsMail", s.replicaDeletion},
		{"ThreeReplicasRollLosingNothing", s.replicasRoll},
		{"ScaleInMovesMailboxes", s.scaleIn},
		{"HelmUninstall", s.helmUninstall},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { s.t = t; st.fn(t) }) {
			s.t = t
			return
		}
	}
}

// helmInstall installs the chart with the locally built image and waits for the operator.
func (s *suite) helmInstall(t *testing.T) {
	repo, tag, ok := strings.Cut(s.image, ":")
	if !ok {
		t.Fatalf("KUBEMAIL_E2E_IMAGE %q is not repository:tag", s.image)
	}
	s.must(s.helm, "install", release, s.root+"/charts/kubemail", "--namespace", operatorNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set-string", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		"--set", "extraArgs={--mailbox-usage-interval=3s}",
		"--wait", "--timeout", readyTimeout.String())
	var deps appsv1.DeploymentList
	if err := s.c.List(ctx(), &deps, client.InNamespace(operatorNS), client.MatchingLabels{"app.kubernetes.io/instance": release}); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 1 || deps.Items[0].Status.AvailableReplicas < 1 {
		t.Fatalf("want one available operator Deployment, got %d (%+v)", len(deps.Items), deps.Items)
	}
	img := deps.Items[0].Spec.Template.Spec.Containers[0].Image
	if img != s.image {
		t.Fatalf("the operator runs image %q, want %q", img, s.image)
	}
}

// samplesReady applies config/samples and waits until every object reports Ready, and the
// mail server pod runs the operator's image on a bound volume.
func (s *suite) samplesReady(t *testing.T) {
	s.kubectlMust("create", "namespace", s.ns)
	s.kubectlMust("apply", "-k", s.root+"/config/samples", "-n", s.ns)
	s.kubectlMust("wait", "--for=condition=Ready", "--timeout="+readyTimeout.String(), "-n", s.ns,
		"maildomains,mailboxes,mailaliases", "--all")
	s.waitPodReady(t, mailPodName, "")
	s.kubectlMust("wait", "--for=condition=Ready", "--timeout="+readyTimeout.String(), "-n", s.ns, "mailcluster/"+clusterName)

	var mc mailv1alpha1.MailCluster
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
		t.Fatal(err)
	}
	if mc.Status.ReadyReplicas != 1 {
		t.Fatalf("MailCluster %s: %d ready replicas, want 1", clusterName, mc.Status.ReadyReplicas)
	}
	var pod corev1.Pod
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: mailPodName}, &pod); err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Containers[0].Image; got != s.image {
		t.Fatalf("the mail server pod runs %q, want the operator's image %q", got, s.image)
	}
	var pvc corev1.PersistentVolumeClaim
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: dataClaimPrefix + mailPodName}, &pvc); err != nil {
		t.Fatal(err)
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		t.Fatalf("the data claim is %s, want Bound", pvc.Status.Phase)
	}
}

// mailFlows sends to a sample mailbox through the client Service and reads the message back by
// IMAP and POP3, then submits a message with AUTH after STARTTLS.
func (s *suite) mailFlows(t *testing.T) {
	ip := s.serviceIP()
	token := "inbound-" + randomHex(4)
	var out string
	var err error
	// kube-proxy routes a Service a moment after its pod turns Ready: retry until it does.
	poll(t, "SMTP to alice through the client Service", time.Minute, func() (bool, error) {
		out, err = s.swaks("--server", ip+":25", "--from", "someone@sender.e2e.test", "--to", "alice@example.com",
			"--header", "Subject: e2e "+token, "--body", "Hello from the end-to-end suite, "+token)
		return err == nil, err
	})
	if !strings.Contains(out, "<-  250") {
		t.Fatalf("no 250 in the SMTP transcript:\n%s", out)
	}
	var msg string
	poll(t, "the message in alice's INBOX over IMAP", 30*time.Second, func() (bool, error) {
		msg, err = s.imapFind(ip, "alice@example.com", alicePassword, token)
		return msg != "", err
	})
	if !strings.Contains(msg, "Hello from the end-to-end suite, "+token) {
		t.Fatalf("IMAP returned the message without its body:\n%s", msg)
	}
	msg, err = s.pop3Find(ip, "alice@example.com", alicePassword, token)
	if err != nil || msg == "" {
		t.Fatalf("the message over POP3: %q, %v", msg, err)
	}

	// Submission: bob's generated password, AUTH only after STARTTLS.
	bobPassword := s.secretValue("bob-credentials", "password")
	if out, err := s.swaks("--server", ip+":587", "--auth", "PLAIN", "--auth-user", "bob@example.org",
		"--auth-password", bobPassword, "--from", "bob@example.org", "--to", "alice@example.com"); err == nil {
		t.Fatalf("submission accepted AUTH without TLS:\n%s", out)
	}
	subToken := "submitted-" + randomHex(4)
	if out, err := s.swaks("--server", ip+":587", "--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
		"--auth-password", bobPassword, "--from", "bob@example.org", "--to", "alice@example.com",
		"--header", "Subject: e2e "+subToken); err != nil {
		t.Fatalf("submission with AUTH over STARTTLS: %v", err)
	} else if !strings.Contains(out, "<~  235") || !strings.Contains(out, "<~  250") {
		t.Fatalf("submission transcript lacks 235 (authenticated) or 250 (accepted):\n%s", out)
	}
	poll(t, "the submitted message in alice's INBOX", 30*time.Second, func() (bool, error) {
		msg, err = s.imapFind(ip, "alice@example.com", alicePassword, subToken)
		return msg != "", err
	})
}

// usageReported expects the operator to show what alice's mailbox stores (the two messages
// of MailFlows, at least) in her Mailbox's status and in `kubectl get mailboxes`.
func (s *suite) usageReported(t *testing.T) {
	var mb mailv1alpha1.Mailbox
	poll(t, "alice's usage in her Mailbox status", time.Minute, func() (bool, error) {
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: "alice"}, &mb); err != nil {
			return false, err
		}
		return mb.Status.Messages >= 2 && mb.Status.Usage != nil && mb.Status.Usage.Value() > 0,
			fmt.Errorf("status.messages %d, status.usage %v", mb.Status.Messages, mb.Status.Usage)
	})
	out := s.kubectlMust("get", "mailbox", "alice", "-n", s.ns, "-o", "custom-columns=USED:.status.usage", "--no-headers")
	if strings.TrimSpace(out) != mb.Status.Usage.String() {
		t.Fatalf("kubectl shows usage %q, want %q", strings.TrimSpace(out), mb.Status.Usage.String())
	}
}

// passwordChange puts a new password into alice's Secret and expects it to work, and the old
// one to stop working, within 5 seconds.
func (s *suite) passwordChange(t *testing.T) {
	ip := s.serviceIP()
	newPassword := "e2e-" + randomHex(12)
	var sec corev1.Secret
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: "alice-password"}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"password": []byte(newPassword)}
	changed := time.Now()
	if err := s.c.Update(ctx(), &sec); err != nil {
		t.Fatal(err)
	}
	poll(t, "the new password to work and the old one to stop working", 5*time.Second, func() (bool, error) {
		return s.imapCanLogin(ip, "alice@example.com", newPassword) && !s.imapCanLogin(ip, "alice@example.com", alicePassword), nil
	})
	t.Logf("the new password worked %.1f s after the Secret changed", time.Since(changed).Seconds())
	// Put the sample's password back for the steps that follow.
	sec.Data = map[string][]byte{"password": []byte(alicePassword)}
	if err := s.c.Update(ctx(), &sec); err != nil {
		t.Fatal(err)
	}
	poll(t, "the sample password to work again", 30*time.Second, func() (bool, error) {
		return s.imapCanLogin(ip, "alice@example.com", alicePassword), nil
	})
}

// podDeletion deletes the mail server pod and finds the mail on its replacement.
func (s *suite) podDeletion(t *testing.T) {
	ip := s.serviceIP()
	token := "survivor-" + randomHex(4)
	if _, err := s.swaks("--server", ip+":25", "--from", "someone@sender.e2e.test", "--to", "alice@example.com",
		"--header", "Subject: e2e "+token); err != nil {
		t.Fatal(err)
	}
	old := s.pod(t, mailPodName)
	s.kubectlMust("delete", "pod", mailPodName, "-n", s.ns, "--wait=false")
	s.waitPodReady(t, mailPodName, old.UID)
	var msg string
	var err error
	poll(t, "the message on the replacement pod", time.Minute, func() (bool, error) {
		msg, err = s.imapFind(ip, "alice@example.com", alicePassword, token)
		return msg != "", err
	})
}

func (s *suite) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: name}, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// waitPodReady waits for the mail server pod name (one other than the pod with UID old, when
// old is set) to be Ready. A pod that cannot start fails the test at once with what its
// container says, instead of running into the timeout.
func (s *suite) waitPodReady(t *testing.T, name string, old types.UID) {
	t.Helper()
	poll(t, "the mail server pod "+name+" to be Ready", readyTimeout, func() (bool, error) {
		var pod corev1.Pod
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: name}, &pod); err != nil {
			return false, err
		}
		if pod.UID == old || pod.DeletionTimestamp != nil {
			return false, fmt.Errorf("pod %s is still the old one", pod.Name)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		state := describePod(&pod)
		for _, cs := range pod.Status.ContainerStatuses {
			// One crash may be a race at start-up; a second one, or a container that cannot even
			// be created, is a broken pod.
			if w := cs.State.Waiting; cs.RestartCount >= 2 || w != nil && broken[w.Reason] {
				logs, _ := s.run("", s.kubectl, "logs", "-n", s.ns, pod.Name, "--previous", "--tail", "5")
				t.Fatalf("the mail server pod cannot start: %s\nits last words:\n%s", state, logs)
			}
		}
		return false, fmt.Errorf("%s%s", state, s.warnings(&pod))
	})
}

// warnings returns the pod's latest Warning event (a failing probe, a volume that does not
// mount), for a message that says why a pod is not Ready.
func (s *suite) warnings(pod *corev1.Pod) string {
	var events corev1.EventList
	if err := s.c.List(ctx(), &events, client.InNamespace(pod.Namespace)); err != nil {
		return ""
	}
	var last *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if e.Type == corev1.EventTypeWarning && e.InvolvedObject.UID == pod.UID &&
			(last == nil || e.LastTimestamp.After(last.LastTimestamp.Time)) {
			last = e
		}
	}
	if last == nil {
		return ""
	}
	return fmt.Sprintf("; last warning: %s: %s", last.Reason, last.Message)
}

// broken are the waiting reasons of a container that will not start without a change.
var broken = map[string]bool{"CreateContainerConfigError": true, "CreateContainerError": true,
	"ErrImageNeverPull": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true, "RunContainerError": true}

// describePod says in one line where a pod is: phase, conditions and container states.
func describePod(pod *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s is %s", pod.Name, pod.Status.Phase)
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			fmt.Fprintf(&b, "; %s=%s %s %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		fmt.Fprintf(&b, "; container %s: ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		if w := cs.State.Waiting; w != nil {
			fmt.Fprintf(&b, " waiting (%s: %s)", w.Reason, w.Message)
		}
		if l := cs.LastTerminationState.Terminated; l != nil {
			fmt.Fprintf(&b, " last exit %d (%s) %s", l.ExitCode, l.Reason, strings.TrimSpace(l.Message))
		}
	}
	return b.String()
}

// rollingUpdate changes a setting that rolls the StatefulSet while a client keeps sending, and
// expects the rollout to finish with no failed transaction and every accepted message stored
// exactly once.
func (s *suite) rollingUpdate(t *testing.T) {
	ip := s.serviceIP()
	senders := s.startSenders(t, ip, "bob@example.org")
	old := s.pod(t, mailPodName)
	s.roll(t)
	if s.pod(t, mailPodName).UID == old.UID {
		t.Fatal("the StatefulSet reports a new revision but the pod was not replaced")
	}
	acked, retries := senders.finish(5, "messages accepted by the new pod")
	t.Logf("during the rollout: %d messages accepted, %d attempts deferred and retried", len(acked["bob@example.org"]), retries)
	s.storedOnce(t, ip, "bob@example.org", s.secretValue("bob-credentials", "password"), acked["bob@example.org"])
}

// roll changes a setting of the sample MailCluster that changes its pod template, and waits
// until the StatefulSet has replaced every pod and all of them are Ready.
func (s *suite) roll(t *testing.T) {
	t.Helper()
	var sts appsv1.StatefulSet
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &sts); err != nil {
		t.Fatal(err)
	}
	oldRevision := sts.Status.UpdateRevision
	var mc mailv1alpha1.MailCluster
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Limits.MaxRecipients++
	if err := s.c.Patch(ctx(), &mc, patch); err != nil {
		t.Fatal(err)
	}
	poll(t, "the StatefulSet to roll to a new revision", readyTimeout, func() (bool, error) {
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &sts); err != nil {
			return false, err
		}
		st := sts.Status
		if st.ObservedGeneration == sts.Generation && st.UpdateRevision != oldRevision &&
			st.CurrentRevision == st.UpdateRevision && st.UpdatedReplicas == *sts.Spec.Replicas &&
			st.ReadyReplicas == *sts.Spec.Replicas {
			return true, nil
		}
		return false, fmt.Errorf("revision %s → %s, %d updated, %d ready; %s", st.CurrentRevision, st.UpdateRevision,
			st.UpdatedReplicas, st.ReadyReplicas, s.describePods())
	})
}

// describePods says where each mail server pod of the sample cluster is, in one line each.
func (s *suite) describePods() string {
	var pods corev1.PodList
	if err := s.c.List(ctx(), &pods, client.InNamespace(s.ns), client.MatchingLabels{"app.kubernetes.io/instance": clusterName}); err != nil {
		return err.Error()
	}
	var lines []string
	for i := range pods.Items {
		lines = append(lines, describePod(&pods.Items[i]))
	}
	return strings.Join(lines, "\n")
}

// storedOnce waits until every token in acked is the subject of a message in user's INBOX, read
// through the client Service, and fails at once when one of them is there twice.
func (s *suite) storedOnce(t *testing.T, ip, user, password string, acked []string) {
	t.Helper()
	poll(t, fmt.Sprintf("the %d accepted messages in %s's INBOX", len(acked), user), 3*time.Minute, func() (bool, error) {
		subs, err := subjects(net.JoinHostPort(ip, "993"), user, password)
		if err != nil {
			return false, err
		}
		count := map[string]int{}
		for _, sub := range subs {
			count[sub]++
		}
		var lost, dup []string
		for _, tok := range acked {
			switch n := count[tok]; {
			case n == 0:
				lost = append(lost, tok)
			case n > 1:
				dup = append(dup, tok)
			}
		}
		if len(dup) > 0 {
			t.Fatalf("of %d accepted messages, %d are stored more than once: %v", len(acked), len(dup), dup)
		}
		return len(lost) == 0, fmt.Errorf("%d of %d accepted messages not (yet) stored: %v", len(lost), len(acked), lost)
	})
}

// deletionPolicy deletes a Mailbox with deletionPolicy Delete and expects its stored mail gone,
// then one with the default Retain and expects its mail kept.
func (s *suite) deletionPolicy(t *testing.T) {
	ip := s.serviceIP()
	volume := s.volumePath(mailPodName)
	// carol keeps a copy of what she forwards to bob, so both get this message.
	token := "policy-" + randomHex(4)
	if _, err := s.swaks("--server", ip+":25", "--from", "someone@sender.e2e.test", "--to", "carol@example.com",
		"--header", "Subject: e2e "+token); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"carol@example.com", "bob@example.org"} {
		poll(t, addr+"'s mail on the volume", 30*time.Second, func() (bool, error) {
			files, _, err := mailboxFiles(volume, addr)
			return len(files) > 0, err
		})
	}

	s.kubectlMust("delete", "mailbox", "carol", "-n", s.ns, "--timeout=2m")
	poll(t, "carol's mail to be removed from the volume", time.Minute, func() (bool, error) {
		files, exists, err := mailboxFiles(volume, "carol@example.com")
		return !exists && len(files) == 0, err
	})

	bobFiles, _, err := mailboxFiles(volume, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	bobPassword := s.secretValue("bob-credentials", "password")
	if !s.imapCanLogin(ip, "bob@example.org", bobPassword) {
		t.Fatal("bob cannot log in before his Mailbox is deleted")
	}
	s.kubectlMust("delete", "mailbox", "bob", "-n", s.ns, "--timeout=2m")
	var mbx mailv1alpha1.Mailbox
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: "bob"}, &mbx); !apierrors.IsNotFound(err) {
		t.Fatalf("Mailbox bob still exists after delete: %v", err)
	}
	// The operator's next directory update drops bob; his files must stay.
	poll(t, "bob to lose access (the directory without him)", 30*time.Second, func() (bool, error) {
		return !s.imapCanLogin(ip, "bob@example.org", bobPassword), nil
	})
	files, exists, err := mailboxFiles(volume, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !exists || len(files) < len(bobFiles) {
		t.Fatalf("deletionPolicy Retain: bob had %d stored messages, %d are left (directory exists: %v)", len(bobFiles), len(files), exists)
	}
}

// helmUninstall removes the release and expects none of its objects left but the CRDs (kept by
// design, with every account in them), and the mail server's PersistentVolumeClaim kept.
func (s *suite) helmUninstall(t *testing.T) {
	start := time.Now()
	s.must(s.helm, "uninstall", release, "--namespace", operatorNS, "--wait", "--timeout", readyTimeout.String())
	t.Logf("helm uninstall took %.1f s", time.Since(start).Seconds())
	defer func() {
		t.Logf("the release's objects were gone %.1f s after helm uninstall began", time.Since(start).Seconds())
	}()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400 // a sweep lists every resource type
	dyn := dynamic.NewForConfigOrDie(cfg)
	lists, err := s.cs.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	poll(t, "every object of the release to be gone", time.Minute, func() (bool, error) {
		var left []string
		for _, l := range lists {
			gv, err := schema.ParseGroupVersion(l.GroupVersion)
			if err != nil {
				return false, err
			}
			for _, r := range l.APIResources {
				if !hasVerb(r, "list") || strings.Contains(r.Name, "/") {
					continue
				}
				objs, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx(), metav1.ListOptions{
					LabelSelector: "app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance=" + release})
				if err != nil {
					continue // a resource that cannot be listed holds nothing of ours
				}
				for _, o := range objs.Items {
					if r.Name == "customresourcedefinitions" && isKeptCRD(o) {
						continue
					}
					left = append(left, fmt.Sprintf("%s %s/%s", r.Name, o.GetNamespace(), o.GetName()))
				}
			}
		}
		var pods corev1.PodList
		if err := s.c.List(ctx(), &pods, client.InNamespace(operatorNS)); err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			left = append(left, "pod "+p.Namespace+"/"+p.Name)
		}
		if len(left) > 0 {
			return false, fmt.Errorf("left behind: %s", strings.Join(left, ", "))
		}
		return true, nil
	})
	var pvc corev1.PersistentVolumeClaim
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: dataClaimPrefix + mailPodName}, &pvc); err != nil {
		t.Fatalf("the mail server's PersistentVolumeClaim after helm uninstall: %v", err)
	}
	if pvc.DeletionTimestamp != nil || pvc.Status.Phase != corev1.ClaimBound {
		t.Fatalf("the data claim is being deleted or not bound after helm uninstall (phase %s)", pvc.Status.Phase)
	}
	var mc mailv1alpha1.MailCluster
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
		t.Fatalf("the MailCluster after helm uninstall (CRDs are kept): %v", err)
	}
	if c := meta.FindStatusCondition(mc.Status.Conditions, "Ready"); c == nil {
		t.Fatal("the MailCluster lost its status after helm uninstall")
	}
}

func hasVerb(r metav1.APIResource, verb string) bool {
	for _, v := range r.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// isKeptCRD reports whether o is one of kubemail's CRDs, which the chart keeps on uninstall.
func isKeptCRD(o unstructured.Unstructured) bool {
	return strings.HasSuffix(o.GetName(), "."+mailv1alpha1.GroupVersion.Group) &&
		o.GetAnnotations()["helm.sh/resource-policy"] == "keep"
}
