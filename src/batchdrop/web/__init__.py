"""The runs page: what happened to each file, in the browser (served by the query API)."""
