package itp

import (
	"encoding/json"

	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-itp/caddy-itp/results"
)

// itpResultsCommand is `caddy itp results`.
func itpResultsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "results <session> [--follow] [--failed] [--check NAME] [--json]",
		Short: "Prints a session's check results",
		Long: `
Prints the check results of a session, oldest first, as a table: id, time
(UTC), PASS or FAIL, the check, source and target, the request and the
message. --failed keeps only failures, --check only one check (e.g.
"Was encrypted?"), --since only results with a greater id.

--follow keeps polling (every --interval) and prints new results as they
are recorded, until interrupted. --json prints each result as one JSON
object per line (the admin API's records), also with --follow.`,
		Example: `  $ caddy itp results demo
  $ caddy itp results demo --failed --follow
  $ caddy itp results demo --json | jq .`,
		RunE: run(1, "a session id", func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			follow, _ := fl.GetBool("follow")
			failed, _ := fl.GetBool("failed")
			check, _ := fl.GetString("check")
			since, _ := fl.GetInt64("since")
			interval, _ := fl.GetDuration("interval")
			if since < 0 {
				return &cliError{exitUsage, "--since must not be negative"}
			}
			if interval < 100*time.Millisecond {
				return &cliError{exitUsage, "--interval must be at least 100ms"}
			}
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			id := args[0]
			jsonOut := asJSON(cmd)
			header := !jsonOut
			for {
				q := url.Values{"since": {strconv.FormatInt(since, 10)}}
				if failed {
					q.Set("status", results.StatusFail)
				}
				if check != "" {
					q.Set("check", check)
				}
				var list []results.Result
				err := c.getJSON(ctx, "/itp/sessions/"+pathID(id)+"/results?"+q.Encode(), &list)
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted while following
					}
					return err
				}
				if header && (len(list) > 0 || !follow) {
					printResultHeader(os.Stdout)
					header = false
				}
				for _, r := range list {
					since = max(since, r.ID)
					if jsonOut {
						b, err := json.Marshal(r)
						if err != nil {
							return err
						}
						fmt.Printf("%s\n", b)
					} else {
						printResult(os.Stdout, r)
					}
				}
				if !follow {
					if len(list) == 0 && !jsonOut {
						fmt.Fprintln(os.Stderr, "no results")
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		}),
	}
	cmd.Flags().BoolP("follow", "f", false, "Keep printing new results until interrupted")
	cmd.Flags().Bool("failed", false, "Only failed checks")
	cmd.Flags().String("check", "", "Only this check, e.g. \"Client certificate\"")
	cmd.Flags().Int64("since", 0, "Only results with an id greater than this")
	cmd.Flags().Duration("interval", time.Second, "How often --follow polls")
	addJSONFlag(cmd)
	return cmd
}

// resultLine is the layout of a result row: fixed widths, so that rows
// printed at different times by --follow line up.
const resultLine = "%-5s %-20s %-6s %-22s %-24s %-48s %s\n"

func printResultHeader(w io.Writer) {
	fmt.Fprintf(w, resultLine, "ID", "TIME (UTC)", "STATUS", "CHECK", "FROM -> TO", "REQUEST", "MESSAGE")
}

func printResult(w io.Writer, r results.Result) {
	req := r.Method + " " + r.URI
	fmt.Fprintf(w, resultLine,
		strconv.FormatInt(r.ID, 10),
		r.Time.UTC().Format("2006-01-02 15:04:05"),
		strings.ToUpper(r.Status),
		r.Check,
		r.Source+" -> "+r.Target,
		req,
		oneLine(r.Message))
}

// oneLine keeps a message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
