# Shortcuts; each target is one documented script.
.PHONY: run test e2e bench manifests

run:
	scripts/fetch-onnxruntime.sh && cargo run --release

test:
	scripts/fetch-onnxruntime.sh && cargo test

e2e:
	e2e/run.sh

bench:
	bench/run.sh

manifests:
	scripts/check-manifests.sh
