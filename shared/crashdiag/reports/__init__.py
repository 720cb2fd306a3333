"""What people read: the report (``report``: JSON and Markdown), the incident page
(``html_report``), the fleet view (``fleet``), the terminal rendering (``render``),
escaping per medium (``escape``), redaction (``redact``) and readiness advice.

Reports use the classifier and the object store; never the ECS client, the pipeline
or notify.
"""
