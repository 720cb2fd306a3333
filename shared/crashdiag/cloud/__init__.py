"""Cloud clients and their local stand-ins: the object store (OSS or a folder), the
ECS / Cloud Assistant API (SDK or a simulated instance), Function Compute invocation.

They know nothing of incidents, reports or notifications: they move bytes and call
APIs. They may use ``crashdiag.settings``; nothing else of ours.
"""
