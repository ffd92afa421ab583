"""`po-tui report`: the distillation report the seeds wrote by hand, generated from the files.

inputs.py finds the results files and training outputs; training.py reads the training side;
charts.py draws (PNG with matplotlib, unicode text otherwise); markdown.py writes the sections;
build.py puts them together and writes them atomically.
"""
