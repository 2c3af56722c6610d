"""One module per detector; each exports `DETECTOR` (see router/sensitivity/detector.py)."""
