"""A FastAPI service that serves a machine-learning model."""

DISTRIBUTION = "{{ cookiecutter.project_slug }}"
