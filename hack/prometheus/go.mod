// Wrapper module pinning Prometheus and promtool, which the local cluster
// runs to scrape Ballast's scheduler, operator and node agents.
module ballast.dev/hack/prometheus

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
