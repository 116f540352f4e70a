"""The operator's web console, served under ``/console`` on a node's HTTP endpoint: where
everything stands, the requests by flow, state and time, one request's page, and resubmit and
discard, each kept in the audit trail (docs/operating.md, The console)."""
