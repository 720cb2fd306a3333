"""The incident pipeline, free of Function Compute: ``events`` reads ECS events,
``stages`` (``Pipeline``) runs ingest → collect → diagnose → notify over the store,
``collect`` drives Cloud Assistant and the serial console, ``guest/`` holds the script
that runs inside the instance and ``guest_output`` reads what it prints, ``runtime``
builds the parts a handler needs, once per instance.

It may use every layer below it: classifier, cloud, reports, notify, settings.
Nothing here imports ``functions/``; the handlers import this.
"""
