package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
)

func init() {
	caddy.RegisterModule(publishAdmin{})
}

// publishAdmin is the admin endpoint GET /dane/publish: what the running
// dane_publish app would publish at each owner if it reconciled now, and
// what each zone holds, as JSON. It is a dry run: nothing is locked or
// written.
type publishAdmin struct{}

// CaddyModule returns the Caddy module information.
func (publishAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.dane_publish",
		New: func() caddy.Module { return new(publishAdmin) },
	}
}

// Routes returns the endpoint.
func (publishAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/dane/publish", Handler: caddy.AdminHandlerFunc(servePublishPreview)}}
}

func servePublishPreview(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	p := runningPublish.Load()
	if p == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no dane_publish app is running")}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{"owners": p.preview(ctx)})
}

// publishCommand is `caddy dane publish --dry-run`: it asks the running
// Caddy's admin endpoint and prints the RRsets as zone-file lines.
func publishCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "publish --dry-run [--address <admin address>] [--json]",
		Short: "Print the TLSA RRsets the running dane_publish app would publish",
		Long: `
Asks the running Caddy (admin endpoint GET /dane/publish) what its
dane_publish app would write at each TLSA owner if it reconciled now: the
records of the certificates every instance serves or holds for a renewal,
plus those still inside their 2×TTL grace, and what the zone holds today.
Nothing is sent to the DNS provider. Publishing itself is the app's job;
only --dry-run is available here.

Exit status: 0 printed, 1 an owner's zone could not be read, 2 usage error
or no running dane_publish app.
`,
		Args: cobra.NoArgs,
		RunE: runE(runPublish),
	}
	f := cmd.Flags()
	f.Bool("dry-run", false, "Print what would be published (required)")
	f.String("address", "localhost:2019", "Caddy's admin address")
	f.Bool("json", false, "Print the endpoint's JSON")
	return cmd
}

func runPublish(cmd *cobra.Command, _ []string) (int, error) {
	f := cmd.Flags()
	if dry, _ := f.GetBool("dry-run"); !dry {
		return exitUsage, fmt.Errorf("publishing is done by the dane_publish app; this command only has --dry-run")
	}
	addr, _ := f.GetString("address")
	asJSON, _ := f.GetBool("json")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	client := &http.Client{Timeout: 40 * time.Second}
	resp, err := client.Get(strings.TrimSuffix(addr, "/") + "/dane/publish")
	if err != nil {
		return exitUsage, fmt.Errorf("asking the admin endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return exitUsage, fmt.Errorf("reading the admin endpoint's answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return exitUsage, fmt.Errorf("admin endpoint: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	out := cmd.OutOrStdout()
	if asJSON {
		_, err := out.Write(body)
		return 0, err
	}
	var doc struct {
		Owners []Preview `json:"owners"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return exitUsage, fmt.Errorf("admin endpoint answer: %v", err)
	}
	status := 0
	for _, pv := range doc.Owners {
		fmt.Fprintf(out, "; %s in zone %s\n", pv.Owner, pv.Zone)
		if pv.Error != "" {
			fmt.Fprintf(out, "; error: %s\n", pv.Error)
			status = 1
		}
		for _, r := range pv.Publish {
			fmt.Fprintf(out, "%s %d IN TLSA %s\n", pv.Owner, pv.TTL, r)
		}
		if pv.Error == "" && !slices.Equal(pv.Publish, pv.InZone) {
			fmt.Fprintf(out, "; the zone holds now: %s\n", strings.Join(pv.InZone, ", "))
		}
		fmt.Fprintln(out)
	}
	if status != 0 {
		return status, errRefusedExit
	}
	return 0, nil
}

// Interface guards.
var _ caddy.AdminRouter = publishAdmin{}
