package itp

import (
	"context"

	"github.com/caddy-itp/caddy-itp/results"
)

// RecordResultForTest records a check result in the running app's results
// store, as the itp handler does, for the admin API tests of package
// itp_test. It returns the recorded result, or an id of 0 when no itp app
// is running.
func RecordResultForTest(r results.Result) results.Result {
	app := activeApp()
	if app == nil {
		return results.Result{}
	}
	return app.state.results.Record(r)
}

// FlushResultsForTest writes the running app's pending results to storage.
func FlushResultsForTest() error {
	app := activeApp()
	if app == nil {
		return nil
	}
	return app.state.results.Flush(context.Background())
}
