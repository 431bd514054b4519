"""The results report: one self-contained HTML file (tables, bar charts and overlay strips inlined)."""
