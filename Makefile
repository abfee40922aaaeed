# The two set-up commands of the README: `make run` and `make test`.
POLICIES ?= policies
DB       ?= data/tokenctl.sqlite
HOST     ?= 127.0.0.1
PORT     ?= 8080

.PHONY: run test deps test-deps build unit-tests replicas-tests pg-outage-tests sdk-tests crash-tests disk-full-tests dashboards-tests demo clean

deps:
	@scripts/install-deps.sh

## Install what is missing, build (release) and run the proxy on policies/ and data/tokenctl.sqlite.
run: deps
	swift build -c release --product tokenctl
	@mkdir -p $(dir $(DB))
	.build/release/tokenctl serve --policies $(POLICIES) --db $(DB) --host $(HOST) --port $(PORT)

## Install what is missing and run every test: Swift unit + end-to-end tests, the official SDKs' compatibility test,
## the PostgreSQL outage test, the kill -9 crash test, the disk-full test, the service-user test, and the dashboards' and alert rules' PromQL against a real Prometheus scraping a live tokenctl.
test: test-deps unit-tests replicas-tests pg-outage-tests sdk-tests crash-tests disk-full-tests service-tests dashboards-tests

# The build's libraries plus Debian's prometheus (prometheus and promtool) for dashboards-tests
# and postgresql for the PostgreSQL ledger and shared-quota tests.
test-deps:
	@scripts/install-deps.sh prometheus postgresql

# The PostgreSQL tests run against a throwaway server on 127.0.0.1 (scripts/with-postgres.sh).
unit-tests:
	swift build --build-tests
	scripts/with-postgres.sh swift test --skip-build

# Three tokenctl replicas on one PostgreSQL: shared budgets under 600 concurrent calls, a replica killed mid-load.
replicas-tests:
	scripts/with-postgres.sh scripts/replicas-test.sh

# tokenctl on PostgreSQL while its server stops and starts again (refusals, /healthz, a stream's
# end waiting for its row, a stop during the outage and the next start recording the call).
pg-outage-tests:
	scripts/with-postgres.sh scripts/pg-outage-test.sh

sdk-tests:
	scripts/sdk-compat.sh

crash-tests:
	scripts/crash-test.sh

disk-full-tests:
	scripts/disk-full-test.sh

# tokenctl serve as an unprivileged service user (calls served and recorded), and a second serve on its ledger refused.
service-tests:
	scripts/service-test.sh

dashboards-tests:
	scripts/dashboards-check.sh

demo: deps
	swift build --product tokenctl
	.build/debug/tokenctl demo

clean:
	rm -rf .build
