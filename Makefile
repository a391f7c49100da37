# The two commands of the quick start. Both set everything up first (idempotent).
.PHONY: demo test setup lint

demo:            ## set up, then answer the bundled recorded question out loud
	scripts/setup.sh
	.venv/bin/assistant respond --out out/reply.wav --report out/report.json

test:            ## set up with test tools, then lint and run the whole test suite
	scripts/test.sh

setup:
	scripts/setup.sh --dev

lint:
	.venv/bin/ruff check assistant tests bench && .venv/bin/ruff format --check assistant tests bench
