"""One router per resource: workflows, output types, legacy."""
