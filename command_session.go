package itp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// itpSessionCommand is `caddy itp session`.
func itpSessionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session <create|list|show|delete>",
		Short: "Creates, lists, shows and deletes test sessions",
		Long: `
Creates, lists, shows and deletes the platform's test sessions through the
admin API (POST, GET and DELETE /itp/sessions). A session's JSON is the
admin API's (see the README); its id is the capability that reaches its
testing URLs, session page and results.`,
		RunE: groupRunE,
	}

	create := &cobra.Command{
		Use:   "create --file <session.json>",
		Short: "Creates a session and prints the URLs to configure",
		Long: `
Creates a session from a JSON file ("-" reads stdin) and prints its id, the
URLs each calling component must configure (secure and insecure) and any
warnings. With --json, prints the admin API's answer instead.`,
		Example: `  $ caddy itp session create --file session.json
  $ caddy itp session create --file - < session.json --json`,
		RunE: run(0, "", func(cmd *cobra.Command, _ []string) error {
			file, _ := cmd.Flags().GetString("file")
			if file == "" {
				return &cliError{exitUsage, "--file is required: the session's JSON (\"-\" for stdin)"}
			}
			body, err := readInput(file, "the session file")
			if err != nil {
				return err
			}
			if !json.Valid(body) {
				return &cliError{exitUsage, fmt.Sprintf("%s is not valid JSON", file)}
			}
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			data, err := c.do(cmd.Context(), http.MethodPost, "/itp/sessions", "application/json", body)
			if err != nil {
				return fmt.Errorf("creating the session: %w", err)
			}
			if asJSON(cmd) {
				_, err = os.Stdout.Write(data)
				return err
			}
			var v SessionView
			if err := json.Unmarshal(data, &v); err != nil {
				return fmt.Errorf("the admin API answered something that is not a session: %w", err)
			}
			fmt.Printf("created session %s", v.ID)
			if v.Name != "" {
				fmt.Printf(" (%s)", v.Name)
			}
			fmt.Println()
			printURLs(os.Stdout, v.URLs)
			printWarnings(os.Stdout, v.Warnings)
			return nil
		}),
	}
	create.Flags().StringP("file", "f", "", "The session's JSON (\"-\" for stdin)")
	addJSONFlag(create)

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists the sessions",
		Long: `
Lists every session: id, name, group and components (simulated ones marked
with *). With --json, prints the admin API's answer.`,
		RunE: run(0, "", func(cmd *cobra.Command, _ []string) error {
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			data, err := c.do(cmd.Context(), http.MethodGet, "/itp/sessions", "", nil)
			if err != nil {
				return fmt.Errorf("listing sessions: %w", err)
			}
			if asJSON(cmd) {
				_, err = os.Stdout.Write(data)
				return err
			}
			var list []SessionView
			if err := json.Unmarshal(data, &list); err != nil {
				return fmt.Errorf("the admin API answered something that is not a list of sessions: %w", err)
			}
			if len(list) == 0 {
				fmt.Fprintln(os.Stderr, "no sessions")
				return nil
			}
			tw := newTable(os.Stdout)
			fmt.Fprintln(tw, "ID\tNAME\tGROUP\tCOMPONENTS\tDECLARED")
			for _, s := range list {
				var comps []string
				for _, comp := range s.Components {
					name := comp.Slug
					if comp.Simulated {
						name += "*"
					}
					comps = append(comps, name)
				}
				declared := "api"
				if s.Static {
					declared = "config"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, dash(s.Name), dash(s.Group), dash(strings.Join(comps, ",")), declared)
			}
			return tw.Flush()
		}),
	}
	addJSONFlag(list)

	show := &cobra.Command{
		Use:   "show <id>",
		Short: "Shows a session: components, URLs, warnings",
		Long: `
Shows a session as the admin API has it (private keys and secrets are
never shown): its components, whether each upstream leg is encrypted, the
URLs to configure and any warnings. With --json, prints the admin API's
answer.`,
		RunE: run(1, "a session id", func(cmd *cobra.Command, args []string) error {
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			data, err := c.do(cmd.Context(), http.MethodGet, "/itp/sessions/"+pathID(args[0]), "", nil)
			if err != nil {
				return err
			}
			if asJSON(cmd) {
				_, err = os.Stdout.Write(data)
				return err
			}
			var v SessionView
			if err := json.Unmarshal(data, &v); err != nil {
				return fmt.Errorf("the admin API answered something that is not a session: %w", err)
			}
			printSession(os.Stdout, v)
			return nil
		}),
	}
	addJSONFlag(show)

	del := &cobra.Command{
		Use:   "delete <id>",
		Short: "Deletes a session and its results",
		Long: `
Deletes a session and its results. Sessions declared in the Caddy config
cannot be deleted through the API (the admin API answers 409).`,
		RunE: run(1, "a session id", func(cmd *cobra.Command, args []string) error {
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			if _, err := c.do(cmd.Context(), http.MethodDelete, "/itp/sessions/"+pathID(args[0]), "", nil); err != nil {
				return err
			}
			fmt.Printf("deleted session %s\n", args[0])
			return nil
		}),
	}

	cmd.AddCommand(create, list, show, del)
	return cmd
}

// addJSONFlag adds --json to a command.
func addJSONFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("json", false, "Print JSON instead of a table")
}

// asJSON reports whether --json was given.
func asJSON(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// printSession prints a session for people.
func printSession(w io.Writer, v SessionView) {
	fmt.Fprintf(w, "Session %s\n", v.ID)
	if v.Name != "" {
		fmt.Fprintf(w, "  name:     %s\n", v.Name)
	}
	if v.Group != "" {
		fmt.Fprintf(w, "  group:    %s\n", v.Group)
	}
	if v.Static {
		fmt.Fprintln(w, "  declared: in the Caddy config (read-only through the API)")
	}
	if v.Expires != nil {
		fmt.Fprintf(w, "  expires:  %s\n", v.Expires.UTC().Format("2006-01-02T15:04:05Z"))
	}
	fmt.Fprintln(w, "\nComponents:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  SLUG\tPLAYED BY\tBASE URL\tUPSTREAM LEG")
	for _, c := range v.Components {
		by, leg := "SUT", "-"
		if c.Simulated {
			by = "simulated"
		}
		if c.BaseURL != "" {
			enc := strings.HasPrefix(strings.ToLower(c.BaseURL), "https://")
			if c.UseEncryption != nil {
				enc = *c.UseEncryption
			}
			leg = "plain HTTP (a failure is recorded)"
			if enc {
				leg = "TLS"
				if c.ClientCert != "" || c.Certificate != "" {
					leg = "TLS with the platform's client certificate"
				}
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Slug, by, dash(redactURL(c.BaseURL)), leg)
	}
	tw.Flush()
	fmt.Fprintln(w)
	printURLs(w, v.URLs)
	printWarnings(w, v.Warnings)
}

// printURLs prints a session's testing URLs.
func printURLs(w io.Writer, urls []SessionURL) {
	if len(urls) == 0 {
		fmt.Fprintln(w, "No URLs: no component can receive requests (give one a base_url, or make one simulated).")
		return
	}
	fmt.Fprintln(w, "URLs to configure:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  FROM\tTO\tSECURE (mTLS)\tINSECURE (plain HTTP)")
	for _, u := range urls {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Source, u.Target, u.Secure, u.Insecure)
	}
	tw.Flush()
}

// printWarnings prints a session's warnings.
func printWarnings(w io.Writer, warnings []string) {
	for _, s := range warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}

// redactURL hides a password in a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
