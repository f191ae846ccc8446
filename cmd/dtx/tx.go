package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/internal/termsafe"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/traceparent"
)

// serverEnv names the environment variable with the coordinator's URL for
// dtx tx when --server is not given.
const serverEnv = "DTX_SERVER"

const txUsage = `Usage: dtx tx <list|show|retry|abort> [flags] [GID]

  list              newest transactions (--status, --limit), or those needing
                    attention (--attention, --min-attempts, --older-than)
  show GID          a transaction's history as a sequence of calls
  retry GID         call the operations waiting on backoff now (admin token)
  abort GID         compensate a running saga (admin token; --reason); --force --operator NAME
                    stops any unfinished one: failed, branches needing a human listed

Flags of every subcommand: --server URL ($DTX_SERVER, default http://127.0.0.1:8480),
--token T ($DTX_ADMIN_TOKEN), --json, --timeout. Run 'dtx tx <subcommand> -h' for more.`

// runTx is dtx tx: a client of a running coordinator's API.
func runTx(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("want a subcommand: list, show, retry or abort (run 'dtx tx -h')")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(os.Stdout, txUsage)
		return flag.ErrHelp
	}
	var run func(ctx context.Context, o *txOpts, fs *flag.FlagSet, args []string) error
	switch sub {
	case "list":
		run = txList
	case "show":
		run = txShow
	case "retry":
		run = txRetry
	case "abort":
		run = txAbort
	default:
		return usagef("unknown subcommand %q: want list, show, retry or abort", sub)
	}
	fs := flag.NewFlagSet("dtx tx "+sub, flag.ContinueOnError)
	o := &txOpts{}
	defServer := os.Getenv(serverEnv)
	if defServer == "" {
		defServer = "http://127.0.0.1:8480"
	}
	fs.StringVar(&o.server, "server", defServer, "coordinator base URL (default $"+serverEnv+" or http://127.0.0.1:8480)")
	fs.StringVar(&o.token, "token", "", "admin token for retry and abort (default $"+adminTokenEnv+")")
	fs.BoolVar(&o.json, "json", false, "print the coordinator's JSON answer instead of text")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on the request")
	return run(ctx, o, fs, args)
}

type txOpts struct {
	server, token string
	json          bool
	timeout       time.Duration
	cl            *client.Client
}

// parse parses flags given before or after the positional arguments and
// checks their count; it then builds the client.
func (o *txOpts) parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(os.Stdout, "Usage of %s %s:\n", fs.Name(), strings.Join(upper(positional), " "))
				fs.SetOutput(os.Stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usageError{err.Error() + " (run with -h for the flags)"}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(pos) < len(positional):
		return nil, usagef("missing %s (usage: %s %s)", strings.ToUpper(positional[len(pos)]), fs.Name(), strings.Join(upper(positional), " "))
	case len(pos) > len(positional):
		return nil, usagef("unexpected argument %q", pos[len(positional)])
	}
	for i, p := range pos {
		if strings.TrimSpace(p) == "" {
			return nil, usagef("%s must not be empty", strings.ToUpper(positional[i]))
		}
	}
	u, err := url.Parse(o.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("server %q: want a URL such as http://127.0.0.1:8480", o.server)
	}
	if o.timeout <= 0 {
		return nil, usagef("timeout must be positive")
	}
	if o.token == "" {
		o.token = os.Getenv(adminTokenEnv)
	}
	o.cl = client.ForURL(o.server, nil)
	o.cl.AdminToken = o.token
	return pos, nil
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

// apiErr turns a client error into the one line dtx prints.
func (o *txOpts) apiErr(err error, gid string) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Type == problem.TypeTransactionNotFound:
			return fmt.Errorf("transaction %q not found", gid)
		case ae.Type == problem.TypeUnauthorized && o.token == "":
			return fmt.Errorf("the coordinator needs its admin token for this: pass --token or set %s", adminTokenEnv)
		case ae.Type == problem.TypeUnauthorized:
			return errors.New("the coordinator refused the admin token (HTTP 401)")
		case ae.Type == problem.TypeAdminDisabled:
			return errors.New("admin actions are disabled on this coordinator: start it with --admin-token (HTTP 403)")
		}
		return fmt.Errorf("coordinator answered HTTP %d: %s", ae.Status, termsafe.String(ae.Detail))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer from the coordinator at %s within %v", o.server, o.timeout)
		}
		return fmt.Errorf("cannot reach the coordinator at %s: %s", o.server, termsafe.String(ue.Err.Error()))
	}
	return err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func txList(ctx context.Context, o *txOpts, fs *flag.FlagSet, args []string) error {
	status := fs.String("status", "", "only running, compensating, succeeded or failed")
	limit := fs.Int("limit", 20, "at most this many (1..1000)")
	attention := fs.Bool("attention", false, "list the unfinished transactions that need a look instead (oldest first)")
	minAttempts := fs.Int("min-attempts", 0, "with --attention: an operation still pending after this many calls (default 5; -1: off)")
	olderThan := fs.Duration("older-than", 0, "with --attention: unfinished for longer than this (default 5m; -1s: off)")
	if _, err := o.parse(fs, args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("limit must be between 1 and 1000")
	}
	if *status != "" && !dtx.Status(*status).Valid() {
		return usagef("status %q: want running, compensating, succeeded or failed", *status)
	}
	if *attention && *status != "" {
		return usagef("--status and --attention do not go together (attention lists unfinished transactions)")
	}
	if !*attention && (*minAttempts != 0 || *olderThan != 0) {
		return usagef("--min-attempts and --older-than need --attention")
	}
	if *minAttempts < 0 && *olderThan < 0 {
		return usagef("--min-attempts and --older-than are both off; keep at least one")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if *attention {
		res, err := o.cl.Attention(ctx, client.AttentionFilter{MinAttempts: *minAttempts, OlderThan: *olderThan, Limit: *limit})
		if err != nil {
			return o.apiErr(err, "")
		}
		if o.json {
			return printJSON(res)
		}
		termsafe.Value(res)
		printAttention(os.Stdout, res, time.Now())
		return nil
	}
	res, err := o.cl.List(ctx, dtx.ListFilter{Status: dtx.Status(*status), Limit: *limit})
	if err != nil {
		return o.apiErr(err, "")
	}
	if o.json {
		return printJSON(res)
	}
	termsafe.Value(res)
	printList(os.Stdout, res, time.Now())
	return nil
}

func printList(w io.Writer, res *api.ListResponse, now time.Time) {
	fmt.Fprintf(w, "running %d  compensating %d  succeeded %d  failed %d\n\n",
		res.Counts[dtx.StatusRunning], res.Counts[dtx.StatusCompensating], res.Counts[dtx.StatusSucceeded], res.Counts[dtx.StatusFailed])
	if len(res.Transactions) == 0 {
		fmt.Fprintln(w, "no transactions")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GID\tPATTERN\tSTATUS\tCREATED\tTOOK\tREASON")
	for _, tx := range res.Transactions {
		took := "-"
		if tx.Status.Terminal() {
			took = fmtDur(tx.UpdatedAt.Sub(tx.CreatedAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\n", tx.GID, tx.Pattern, tx.Status, fmtAge(now.Sub(tx.CreatedAt)), took, clip(tx.Reason, 70))
	}
	tw.Flush()
}

func printAttention(w io.Writer, res *api.AttentionResponse, now time.Time) {
	var crit []string
	if res.MinAttempts > 0 {
		crit = append(crit, fmt.Sprintf("an operation pending after %d calls", res.MinAttempts))
	}
	if res.OlderThan > 0 {
		crit = append(crit, fmt.Sprintf("unfinished after %v", res.OlderThan.Std()))
	}
	fmt.Fprintf(w, "needing attention (%s): %d\n", strings.Join(crit, ", or "), len(res.Transactions))
	if len(res.Transactions) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GID\tPATTERN\tSTATUS\tAGE\tWHY")
	for _, it := range res.Transactions {
		for i, why := range it.Why {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.GID, it.Pattern, it.Status, fmtAge(now.Sub(it.CreatedAt)), clip(why, 100))
			} else {
				fmt.Fprintf(tw, "\t\t\t\t%s\n", clip(why, 100))
			}
		}
	}
	tw.Flush()
}

func txShow(ctx context.Context, o *txOpts, fs *flag.FlagSet, args []string) error {
	pos, err := o.parse(fs, args, "gid")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	d, err := o.cl.Get(ctx, pos[0])
	if err != nil {
		return o.apiErr(err, pos[0])
	}
	if o.json {
		return printJSON(d)
	}
	termsafe.Value(d)
	printSequence(os.Stdout, d, colorful(os.Stdout))
	return nil
}

func txRetry(ctx context.Context, o *txOpts, fs *flag.FlagSet, args []string) error {
	pos, err := o.parse(fs, args, "gid")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := o.cl.Retry(ctx, pos[0])
	if err != nil {
		return o.apiErr(err, pos[0])
	}
	if o.json {
		return printJSON(res)
	}
	termsafe.Value(res)
	switch res.Retried {
	case 0:
		fmt.Printf("%s (%s): no call was waiting on backoff; calls in flight finish on their own\n", res.GID, res.Status)
	case 1:
		fmt.Printf("%s (%s): 1 call waiting on backoff is being retried now\n", res.GID, res.Status)
	default:
		fmt.Printf("%s (%s): %d calls waiting on backoff are being retried now\n", res.GID, res.Status, res.Retried)
	}
	return nil
}

func txAbort(ctx context.Context, o *txOpts, fs *flag.FlagSet, args []string) error {
	reason := fs.String("reason", "", "why (recorded as the transaction's reason; default \"aborted by operator\")")
	force := fs.Bool("force", false, "stop any unfinished transaction without compensating: mark it failed and list the branches that need a human")
	operator := fs.String("operator", os.Getenv("USER"), "who aborts, recorded in the transaction's history (required with --force; default $USER)")
	pos, err := o.parse(fs, args, "gid")
	if err != nil {
		return err
	}
	if *force && strings.TrimSpace(*operator) == "" {
		return usagef("--force needs --operator NAME (who stops the transaction; $USER is not set)")
	}
	req := api.AbortRequest{Reason: *reason}
	if *force {
		req.Force, req.Operator = true, *operator
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	d, err := o.cl.AbortWith(ctx, pos[0], req)
	if err != nil {
		return o.apiErr(err, pos[0])
	}
	if o.json {
		return printJSON(d)
	}
	termsafe.Value(d)
	fmt.Printf("%s: %s\n", d.GID, d.Status)
	if *force {
		fmt.Printf("reason: %s\n", d.Reason)
		if len(d.Unresolved) == 0 {
			fmt.Println("no branch needs a human")
		}
		for _, u := range d.Unresolved {
			fmt.Printf("needs a human: branch %d (%s): %s\n", u.Branch, u.Name, u.Why)
		}
	}
	return nil
}

// colorful reports whether f is a terminal that wants colour.
func colorful(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printSequence prints a transaction and its history as a sequence of
// messages between the coordinator and the participants:
//
//	+0s       coordinator -> stock:    action (attempt 1)    ok 3ms
//	+5ms   !! coordinator -> payment:  action (attempt 1)    FAILED 2ms: HTTP 409: insufficient funds
//	+6ms      coordinator == compensating: step 1 (payment) failed: ...
//	+8ms      coordinator -> stock:    compensate (attempt 1) [undo]   ok 1ms
//
// Compensations (compensate, cancel) are marked [undo]; calls that did not
// succeed start with "!!" and say why.
func printSequence(w io.Writer, d *dtx.TxDetail, color bool) {
	red, bold, dim, reset := "", "", "", ""
	if color {
		red, bold, dim, reset = "\x1b[31;1m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
	}
	var spec saga.Spec
	_ = json.Unmarshal(d.Spec, &spec)
	termsafe.Value(&spec)
	printSequenceHeader(w, d, spec, red, bold, reset)
	names, width := printParticipants(w, d, spec, dim, reset)
	printHistory(w, d, names, width, red, bold, reset)
}

// printSequenceHeader prints the transaction's line, its times, reason
// and trace.
func printSequenceHeader(w io.Writer, d *dtx.TxDetail, spec saga.Spec, red, bold, reset string) {
	fmt.Fprintf(w, "%s%s%s  %s  %s\n", bold, d.GID, reset, d.Pattern.Title(), strings.ToUpper(string(d.Status)))
	fmt.Fprintf(w, "  created  %s", d.CreatedAt.UTC().Format("2006-01-02 15:04:05.000 MST"))
	if d.Status.Terminal() {
		fmt.Fprintf(w, ", finished after %s", fmtDur(d.UpdatedAt.Sub(d.CreatedAt)))
	} else if d.LeaseOwner != "" {
		fmt.Fprintf(w, ", driven by %s", d.LeaseOwner)
	} else {
		fmt.Fprint(w, ", waiting for recovery")
	}
	fmt.Fprintln(w)
	if d.Reason != "" {
		fmt.Fprintf(w, "  reason   %s%s%s\n", red, d.Reason, reset)
	}
	if tp, ok := traceparent.Parse(spec.TraceParent); ok {
		fmt.Fprintf(w, "  trace    %s\n", tp.TraceIDString())
	}
}

// printParticipants prints one line per branch and returns the branches'
// names by index and the width for the name column.
func printParticipants(w io.Writer, d *dtx.TxDetail, spec saga.Spec, dim, reset string) (map[int]string, int) {
	// Participants: one line per branch, the width for the column.
	names := make(map[int]string, len(d.Branches))
	width := len("coordinator")
	fmt.Fprintln(w, "\nparticipants")
	for _, b := range d.Branches {
		names[b.Index] = b.Name
		width = max(width, len(b.Name))
	}
	for _, b := range d.Branches {
		// The operations in the pattern's own words: try/cancel, confirm.
		action, undo := dtx.OpAction, dtx.OpCompensate
		if b.Index < len(spec.Steps) {
			action, undo = spec.Steps[b.Index].WireOp(action), spec.Steps[b.Index].WireOp(undo)
		}
		line := fmt.Sprintf("  %-*s  %s %s", width, b.Name, action, b.Action)
		if b.ActionAttempts > 0 {
			line += fmt.Sprintf(" (%s)", plural(b.ActionAttempts, "call"))
		}
		line += fmt.Sprintf(", %s %s", undo, b.Compensate)
		if b.CompensateAttempts > 0 {
			line += fmt.Sprintf(" (%s)", plural(b.CompensateAttempts, "call"))
		}
		if b.Index < len(spec.Steps) {
			if u := spec.Steps[b.Index].Action; u != "" {
				line += "  " + dim + u + reset
			}
		}
		fmt.Fprintln(w, line)
	}
	return names, width
}

// printHistory prints the history, one line per call.
func printHistory(w io.Writer, d *dtx.TxDetail, names map[int]string, width int, red, bold, reset string) {
	fmt.Fprintln(w, "\nhistory")
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "  (none recorded)")
		return
	}
	start := d.CreatedAt
	attempts := map[string]int{}
	for _, ev := range d.Events {
		at := "+" + fmtDur(ev.At.Sub(start))
		if ev.Branch < 0 {
			text := ev.Outcome
			if ev.Detail != "" {
				text += ": " + ev.Detail
			}
			c := bold
			if ev.Outcome == string(dtx.StatusCompensating) || ev.Outcome == string(dtx.StatusFailed) {
				c = red
			}
			fmt.Fprintf(w, "  %-9s    %-*s  == %s%s%s\n", at, width, "coordinator", c, text, reset)
			continue
		}
		key := fmt.Sprintf("%d/%s", ev.Branch, ev.Op)
		attempts[key]++
		name := names[ev.Branch]
		if name == "" {
			name = fmt.Sprintf("branch-%d", ev.Branch)
		}
		if ev.Outcome == coordinator.OutcomeNeedsHuman { // left by a forced abort
			fmt.Fprintf(w, "  %-9s !! coordinator -> %-*s  %sNEEDS A HUMAN%s: %s\n", at, width+1, name+":", red, reset, ev.Detail)
			continue
		}
		op := fmt.Sprintf("%s (attempt %d)", ev.Op, attempts[key])
		if ev.Op == dtx.OpCompensate || ev.Op == dtx.OpCancel {
			op += " [undo]"
		}
		mark, outcome := "  ", ""
		switch ev.Outcome {
		case dtx.Success.String():
			outcome = "ok " + fmtDur(ev.Duration)
		case dtx.Failure.String():
			mark = "!!"
			outcome = red + "FAILED" + reset + " " + fmtDur(ev.Duration)
		default:
			mark = "!!"
			outcome = red + "UNKNOWN" + reset + " " + fmtDur(ev.Duration) + " (retried)"
		}
		if ev.Detail != "" {
			outcome += ": " + red + ev.Detail + reset
		}
		fmt.Fprintf(w, "  %-9s %s coordinator -> %-*s  %-32s %s\n", at, mark, width+1, name+":", op, outcome)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// fmtDur rounds d for display: 850µs, 12ms, 1.2s, 3m4s.
func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// fmtAge is a coarse age: 12s, 5m, 3h, 2d.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(max(d, 0).Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
