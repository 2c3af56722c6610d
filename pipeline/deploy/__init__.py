"""The deployable router sidecar a build emits under dist/<recipe>-<target>/deploy/.

One module per artifact: `spec` (the recipe's `deploy:` section), `router_config`
(router.yaml), `k8s` (manifests), `dockerfile`, `prometheus` (alerts + scrape config),
`forecast` (load forecast recording rules the KEDA scaler reads), `grafana` (dashboard).
Each is a pure function of the recipe's deploy section (and the bundle's file list), so
tests can render and validate them without a build.
"""
