# The two commands of the README. Both set up .venv themselves.
.PHONY: book test
book:
	scripts/build-book.sh
test:
	scripts/run-tests.sh
