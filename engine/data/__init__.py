"""Data files shipped inside the package (pyproject's package-data), each with a small loader here.

They are read through `importlib.resources`, so they are found the same way from a checkout, an
editable install or a wheel.
"""
