"""What people read: the report (``report``: JSON and Markdown), the incident page
(``html_report``), the fleet view (``fleet``), the terminal rendering (``render``),
escaping per medium (``escape``), redaction (``redact``) and readiness advice. The two
pages are Jinja2 templates in ``templates/``, rendered by ``pages``.

Reports use the classifier and the object store; never the ECS client, the pipeline
or notify.
"""
