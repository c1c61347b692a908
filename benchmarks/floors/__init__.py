"""The apps the generated service is measured against."""
