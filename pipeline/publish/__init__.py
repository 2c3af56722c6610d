"""Publish finished bundles to S3 and fetch them back: content-addressed, atomic, verified.

Layout under `s3://bucket/prefix/` (see layout.py):
  <recipe>/<target>/<manifest-sha256>/<file>          files, uploaded first
  <recipe>/<target>/<manifest-sha256>/manifest.json   uploaded last: the commit point
  <recipe>/<target>/channels/<name>.json              pointers, moved after the commit
A version without its manifest does not exist for `fetch` or `list`.
"""
