"""The classifier: kernel log text in, a diagnosis out.

``logtext`` reads any log shape, ``formats`` is the table of the kernel's printk formats,
``parse`` cuts the log into crash reports, ``catalogue`` holds the known-issue rules
(``rules/``, one YAML file each), ``kernels`` compares kernel releases, ``classify``
puts it together, ``rulecheck`` proves rules against their fixtures.

It imports nothing else of crashdiag (no settings, no cloud, no pipeline), so it runs
anywhere: a Function Compute instance, the CLI, a laptop. The import contracts in
pyproject.toml keep it that way.
"""
