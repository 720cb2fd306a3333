"""template.yml against the code it deploys.

The template uses the map form of ROS intrinsics only (``Ref:``, ``Fn::Sub:`` ...), so
``yaml.safe_load`` reads it. Each check ties a part of the template to the code that
depends on it: handlers, environment variables, the RAM actions the SDK calls make, the
object keys the pipeline writes and the packaging layout.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crashdiag.settings import ENV

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared" / "crashdiag"
TEMPLATE = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))
RESOURCES: dict[str, dict] = TEMPLATE["Resources"]
PARAMETERS: dict[str, dict] = TEMPLATE.get("Parameters", {})

CRASH_TYPES = ("ecs:Instance:InstanceFailure.Reboot", "ecs:Instance:SystemFailure.Reboot")
SECRETS = {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"}


def _load_package_tool():
    spec = importlib.util.spec_from_file_location("crashdiag_package_tool", ROOT / "tools" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- template helpers -----------------------------------------------------------------------


def of_type(type_: str) -> dict[str, dict]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == type_}


def props(logical_id: str) -> dict:
    return RESOURCES[logical_id].get("Properties", {})


FUNCTIONS: dict[str, dict] = {r["Properties"]["FunctionName"]: r["Properties"] for r in of_type("ALIYUN::FC::Function").values()}
FUNCTION_IDS: dict[str, str] = {r["Properties"]["FunctionName"]: lid for lid, r in of_type("ALIYUN::FC::Function").items()}


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def text(value) -> str:
    """A template string value as text: literals as is, Fn::Sub's pattern, Ref as ${Name}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    raise AssertionError(f"not a string-like template value: {value!r}")


def managed_policies_of(role_id: str) -> list[str]:
    """The ALIYUN::RAM::ManagedPolicy resources attached to a role (by its RoleName)."""
    return [lid for lid, r in of_type("ALIYUN::RAM::ManagedPolicy").items()
            if {"Fn::GetAtt": [role_id, "RoleName"]} in r["Properties"].get("Roles", [])]


def statements(role_id: str) -> list[dict]:
    """Every policy statement of a role: its inline policies (both branches of any Fn::If)
    and the managed policies attached to it."""
    out = []
    for node in walk(props(role_id).get("Policies", [])):
        if isinstance(node, dict) and "PolicyDocument" in node:
            out.extend(node["PolicyDocument"]["Statement"])
    for lid in managed_policies_of(role_id):
        out.extend(props(lid)["PolicyDocument"]["Statement"])
    return out


def actions(role_id: str, service: str | None = None) -> set[str]:
    found = set()
    for st in statements(role_id):
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        found.update(a for a in acts if service is None or a.startswith(service + ":"))
    return found


def resources_for(role_id: str, action: str) -> list[str]:
    out = []
    for st in statements(role_id):
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action in acts:
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out.extend(text(r) for r in res)
    return out


def service_of(function: str) -> str:
    """The logical id of the ALIYUN::FC::Service a function belongs to (by service name)."""
    name = text(FUNCTIONS[function]["ServiceName"])
    (lid,) = [lid for lid, r in of_type("ALIYUN::FC::Service").items() if text(r["Properties"]["ServiceName"]) == name]
    return lid


def role_of(function: str) -> str:
    """The RAM role a function runs with: its service's (FC 2.0 roles belong to services)."""
    role_id, attr = props(service_of(function))["Role"]["Fn::GetAtt"]
    assert attr == "Arn"
    return role_id


def service_roles() -> set[str]:
    return {r["Properties"]["Role"]["Fn::GetAtt"][0] for r in of_type("ALIYUN::FC::Service").values()}


def oss_triggers() -> dict[str, dict]:
    return {lid: r["Properties"] for lid, r in of_type("ALIYUN::FC::Trigger").items() if r["Properties"]["TriggerType"] == "oss"}


def trigger_matches(trigger: dict, key: str) -> bool:
    f = trigger["TriggerConfig"].get("Filter", {}).get("Key", {})
    return key.startswith(f.get("Prefix", "")) and key.endswith(f.get("Suffix", ""))


# -- the template as ROS ------------------------------------------------------------------------


def test_plain_ros_template():
    assert TEMPLATE["ROSTemplateFormatVersion"] == "2015-09-01"
    assert TEMPLATE.get("Description")
    assert all(r["Type"].startswith("ALIYUN::") for r in RESOURCES.values())
    kinds = {r["Type"] for r in RESOURCES.values()}
    for needed in ("ALIYUN::FC::Service", "ALIYUN::FC::Function", "ALIYUN::FC::Trigger", "ALIYUN::EventBridge::Rule",
                   "ALIYUN::OSS::Bucket", "ALIYUN::RAM::Role"):
        assert needed in kinds


def test_references_resolve():
    """Every Ref, Fn::GetAtt, ${...} in Fn::Sub, condition and DependsOn names something real."""
    known = set(PARAMETERS) | set(RESOURCES)
    conditions = set(TEMPLATE.get("Conditions", {}))
    for node in walk(TEMPLATE):
        if not isinstance(node, dict):
            continue
        if "Ref" in node:
            ref = node["Ref"]
            assert ref in known or ref.startswith("ALIYUN::"), ref
        if "Fn::GetAtt" in node:
            assert node["Fn::GetAtt"][0] in RESOURCES, node
        if "Fn::Sub" in node:
            for var in re.findall(r"\$\{([^}]+)\}", text(node)):
                assert var in PARAMETERS or var.startswith("ALIYUN::"), var
        if "Fn::If" in node:
            assert node["Fn::If"][0] in conditions, node
    for lid, r in RESOURCES.items():
        deps = r.get("DependsOn", [])
        for dep in [deps] if isinstance(deps, str) else deps:
            assert dep in RESOURCES, (lid, dep)


# -- functions ---------------------------------------------------------------------------------


def test_one_function_per_handler_folder():
    folders = {p.parent.name for p in (ROOT / "functions").glob("*/index.py")}
    assert set(FUNCTIONS) == folders


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handler_resolves_and_imports(name):
    fn = FUNCTIONS[name]
    module, attr = fn["Handler"].rsplit(".", 1)
    # FC's Python handler is <file>.<method> at the code root: the package puts
    # functions/<name>/<file>.py there.
    path = ROOT / "functions" / name / f"{module}.py"
    assert path.is_file(), f"{fn['Handler']} names no file for {name}"
    code = (
        "import inspect, sys\n"
        f"sys.path[:0] = [{str(path.parent)!r}, {str(ROOT / 'shared')!r}]\n"
        f"import {module} as m\n"
        f"h = getattr(m, {attr!r})\n"
        "assert callable(h), 'handler is not callable'\n"
        "print(len(inspect.signature(h).parameters))\n"
    )
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2", "an FC event handler takes (event, context)"


def test_runtime_and_code_objects_match_the_package_layout():
    package = _load_package_tool()
    for name, fn in FUNCTIONS.items():
        assert fn["Runtime"] == f"python{package.DEFAULT_PYTHON_VERSION}", name
        assert fn["Handler"] == "index.handler", name
        code = fn["Code"]
        assert text(code["OssBucketName"]) == "${CodeBucket}"
        assert text(code["OssObjectName"]) == "${CodeObjectPrefix}" + package.zip_name(name)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_environment_variables_are_settings_the_code_reads(name):
    env = FUNCTIONS[name].get("EnvironmentVariables", {})
    unknown = set(env) - set(ENV)
    assert not unknown, f"{name} sets variables no code reads: {sorted(unknown)}"
    assert not set(env) & SECRETS, "FC supplies the role's credentials itself"
    if isinstance(env.get("OSS_LINK_ENDPOINT"), dict):
        cond, central, own = env["OSS_LINK_ENDPOINT"]["Fn::If"]
        assert cond == "UseCentralBucket" and text(central) == "https://oss-${CentralBucketRegion}.aliyuncs.com"
        assert text(own) == "https://oss-${ALIYUN::Region}.aliyuncs.com"
    for var in ("CRASHDIAG_LANG", "CRASHDIAG_REGION", "OSS_BUCKET", "OSS_ENDPOINT"):
        assert var in env, f"{name} lacks {var}"
    # the stack's own bucket, or the central one when CentralBucket is set (docs/DEPLOY-MANY.md)
    assert env["OSS_BUCKET"] == {"Fn::If": ["UseCentralBucket", {"Ref": "CentralBucket"}, {"Fn::GetAtt": ["Bucket", "Name"]}]}
    assert env["OSS_BUCKET_REGION"] == {"Fn::If": ["UseCentralBucket", {"Ref": "CentralBucketRegion"}, {"Ref": "ALIYUN::Region"}]}
    local, away = env["OSS_ENDPOINT"]["Fn::If"][2], env["OSS_ENDPOINT"]["Fn::If"][1]
    assert env["OSS_ENDPOINT"]["Fn::If"][0] == "CentralElsewhere"
    assert text(local) == "https://oss-${ALIYUN::Region}-internal.aliyuncs.com"
    assert text(away) == "https://oss-${CentralBucketRegion}.aliyuncs.com"  # internal endpoints answer in-region only
    assert env["ALIBABA_CLOUD_ACCOUNT_ID"] == {"Ref": "ALIYUN::TenantId"}
    for var, value in env.items():
        if ENV[var][1] is int:
            if isinstance(value, dict) and "Ref" in value:  # a parameter: a string with a number's pattern
                param = PARAMETERS[value["Ref"]]
                assert param["Type"] == "String" and int(param["Default"]) > 0, (var, param)
                assert re.fullmatch(param["AllowedPattern"], param["Default"]), (var, param)
                continue
            assert isinstance(value, str) and int(value) > 0, (var, value)  # FC wants strings
    lang = PARAMETERS[env["CRASHDIAG_LANG"]["Ref"]]
    assert set(lang["AllowedValues"]) == {"en", "zh"}


def test_on_ecs_event_knows_how_to_start_collect():
    env = FUNCTIONS["on_ecs_event"]["EnvironmentVariables"]
    assert env["CRASHDIAG_COLLECT_FUNCTION"] in FUNCTIONS and env["CRASHDIAG_COLLECT_FUNCTION"] == "collect"
    assert text(env["CRASHDIAG_FC_SERVICE"]) == text(props(service_of("collect"))["ServiceName"])
    assert re.fullmatch(r"https://\$\{ALIYUN::TenantId\}\.\$\{ALIYUN::Region\}-internal\.fc\.aliyuncs\.com",
                        text(env["CRASHDIAG_FC_ENDPOINT"]))
    for name in FUNCTIONS:
        deps = RESOURCES[FUNCTION_IDS[name]]["DependsOn"]
        assert service_of(name) in ([deps] if isinstance(deps, str) else deps), name  # created after its service


def test_collect_budget_fits_its_timeout():
    fn = FUNCTIONS["collect"]
    env = fn["EnvironmentVariables"]
    wait, command = int(env["COLLECT_WAIT_SECONDS"]), int(env["COLLECT_COMMAND_TIMEOUT"])
    # collect.py: the command may start at the end of the wait and is polled for its
    # timeout + 30 s; then the console fallback and the SDK retry deadline (60 s).
    assert wait + command + 30 + 60 <= fn["Timeout"] <= 600  # 600: the ROS reference's maximum
    assert FUNCTIONS["on_ecs_event"]["MemorySize"] < fn["MemorySize"]  # only collect imports the ECS SDK
    for f in FUNCTIONS.values():
        assert f["MemorySize"] % 64 == 0 and 128 <= f["MemorySize"] <= 3072


def test_async_invocations_retry_and_keep_their_failures():
    queues = of_type("ALIYUN::MNS::Queue")
    assert len(queues) == 1
    ((queue_id, queue),) = queues.items()
    queue_name = text(queue["Properties"]["QueueName"])
    for name in ("collect", "diagnose", "notify"):
        role = role_of(name)
        cfg = FUNCTIONS[name]["AsyncConfiguration"]
        assert 1 <= cfg["MaxAsyncRetryAttempts"] <= 8, name
        assert cfg["MaxAsyncEventAgeInSeconds"] > 0
        dest = text(cfg["Destination"]["OnFailure"])
        assert dest == "acs:mns:${ALIYUN::Region}:${ALIYUN::TenantId}:/queues/" + queue_name + "/messages"
        assert queue_id in RESOURCES[FUNCTION_IDS[name]]["DependsOn"]
        assert dest in resources_for(role, "mns:SendMessage")  # FC delivers with the service role


# -- permissions -------------------------------------------------------------------------------


def _roles() -> dict[str, dict]:
    return of_type("ALIYUN::RAM::Role")


def test_roles_trust_the_right_services():
    trust = {lid: r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] for lid, r in _roles().items()}
    for role in service_roles():
        assert trust[role] == ["fc.aliyuncs.com"]
    for t in oss_triggers().values():
        assert trust[t["InvocationRole"]["Fn::GetAtt"][0]] == ["oss.aliyuncs.com"]


def test_no_wildcard_actions():
    for lid in _roles():
        for action in actions(lid):
            assert "*" not in action, f"{lid} grants {action}"
        for st in statements(lid):
            assert st["Effect"] == "Allow"


def ecs_actions_in_code(module: str = "ecs_sdk.py") -> set[str]:
    source = (SHARED / "cloud" / module).read_text(encoding="utf-8")
    requests = {f"ecs:{m}" for m in re.findall(r"models\.(\w+)Request\(", source)}
    labels = {f"ecs:{m}" for m in re.findall(r"self\._call\(\s*\"(\w+)\"", source)}
    assert requests and requests == labels, f"{module}: request classes and _call labels disagree"
    return requests


def test_ecs_actions_are_exactly_the_sdk_calls_and_only_collect_and_audit_have_them():
    assert actions(role_of("collect"), "ecs") == ecs_actions_in_code()
    # the audit lists instances, runs its script and reads the results: nothing else of ECS
    assert actions(role_of("audit"), "ecs") == ecs_actions_in_code("ecs_fleet.py") == {
        "ecs:DescribeInstances", "ecs:RunCommand", "ecs:DescribeInvocationResults"}
    assert role_of("audit") != role_of("collect")
    for name in FUNCTIONS:
        if name not in ("collect", "audit"):
            assert role_of(name) not in (role_of("collect"), role_of("audit")), name
            assert not actions(role_of(name), "ecs"), f"{name} may call ECS"


def test_the_audit_exists_only_when_enabled():
    assert PARAMETERS["AuditEnabled"]["Default"] == "false"
    assert TEMPLATE["Conditions"]["AuditOn"] == {"Fn::Equals": ["true", {"Ref": "AuditEnabled"}]}
    audit_ids = {FUNCTION_IDS["audit"], role_of("audit"), service_of("audit")}
    audit_ids |= {lid for lid, r in of_type("ALIYUN::FC::Trigger").items() if r["Properties"]["FunctionName"] == "audit"}
    assert len(audit_ids) == 4
    for lid in audit_ids:
        assert RESOURCES[lid].get("Condition") == "AuditOn", lid
    (timer,) = [r["Properties"] for r in of_type("ALIYUN::FC::Trigger").values() if r["Properties"]["FunctionName"] == "audit"]
    assert timer["TriggerType"] == "timer" and timer["TriggerConfig"]["CronExpression"] == {"Ref": "AuditSchedule"}
    env = FUNCTIONS["audit"]["EnvironmentVariables"]
    assert env["CRASHDIAG_AUDIT_TAG"] == {"Ref": "AuditTag"} and PARAMETERS["AuditTag"]["Default"] == "crashdiag:audit=true"
    from crashdiag.settings import Settings

    Settings.from_env({"CRASHDIAG_AUDIT_TAG": PARAMETERS["AuditTag"]["Default"]})  # a tag the code accepts
    for lid, r in of_type("ALIYUN::RAM::ManagedPolicy").items():  # a policy for the audit role exists only with it
        if {"Fn::GetAtt": ["AuditRole", "RoleName"]} in r["Properties"]["Roles"]:
            assert r["Condition"] in ("AuditLogging", "AuditCentral"), lid


def test_a_member_stack_leaves_the_bucket_wide_timers_to_the_bucket_owner():
    owned = {r["Properties"]["TriggerName"] for r in of_type("ALIYUN::FC::Trigger").values() if r.get("Condition") == "OwnsBucket"}
    assert owned >= {"every-minute", "every-15-minutes", "daily-digest", "weekly-readiness"}
    assert "ReconcileTimer" not in RESOURCES or RESOURCES["ReconcileTimer"]["Condition"] == "OwnsBucket"
    assert TEMPLATE["Conditions"]["OwnsBucket"] == {"Fn::Equals": ["", {"Ref": "CentralBucket"}]}


# Actions that cannot be scoped per instance stay on '*'; everything else is scoped to
# this region and account's instances and Cloud Assistant commands.
ECS_UNSCOPED = {"ecs:DescribeInstanceStatus", "ecs:DescribeInstances"}
ECS_SCOPE = ["acs:ecs:${ALIYUN::Region}:${ALIYUN::TenantId}:instance/*",
             "acs:ecs:${ALIYUN::Region}:${ALIYUN::TenantId}:command/*"]


def test_ecs_permissions_are_scoped_to_instances_and_commands():
    role = role_of("collect")
    for action in actions(role, "ecs"):
        if action in ECS_UNSCOPED:
            assert resources_for(role, action) == ["*"], action
        else:
            assert resources_for(role, action) == ECS_SCOPE, action
    for action in ("ecs:RunCommand", "ecs:DescribeInvocationResults", "ecs:DescribeCloudAssistantStatus",
                   "ecs:GetInstanceConsoleOutput"):
        assert action in actions(role) and action not in ECS_UNSCOPED
    role = role_of("audit")
    for action in actions(role, "ecs"):
        assert resources_for(role, action) == (["*"] if action in ECS_UNSCOPED else ECS_SCOPE), action


def all_policy_documents() -> list[dict]:
    docs = []
    for node in walk(RESOURCES):
        if isinstance(node, dict) and "PolicyDocument" in node:
            docs.append(node["PolicyDocument"])
        if isinstance(node, dict) and "AssumeRolePolicyDocument" in node:
            docs.append(node["AssumeRolePolicyDocument"])
    return docs


def test_policy_resources_are_always_lists():
    """PolicyDocument.Statement[].Resource is a list in the ROS/RAM grammar: ['*'], never '*'."""
    docs = all_policy_documents()
    assert docs
    for doc in docs:
        for st in doc["Statement"]:
            if "Resource" in st:
                assert isinstance(st["Resource"], list) and st["Resource"], st


def test_no_value_drops_whole_properties_only():
    """Fn::If ... ALIYUN::NoValue is documented at property level: never as a list item."""

    def check(node, in_list: bool) -> None:
        if isinstance(node, dict):
            if "Fn::If" in node:
                branches = node["Fn::If"][1:]
                assert not (in_list and {"Ref": "ALIYUN::NoValue"} in branches), node
            for v in node.values():
                check(v, False)
        elif isinstance(node, list):
            for v in node:
                check(v, True)

    check(TEMPLATE, False)


def test_logging_permission_exists_only_with_a_logstore():
    policies = of_type("ALIYUN::RAM::ManagedPolicy")
    for lid, r in policies.items():
        if "log:PostLogStoreLogs" in str(r["Properties"]["PolicyDocument"]):
            assert r.get("Condition") in ("HasLogging", "AuditLogging"), lid
    assert TEMPLATE["Conditions"]["AuditLogging"] == {"Fn::And": [{"Condition": "HasLogging"}, {"Condition": "AuditOn"}]}
    for role in service_roles():
        assert "log:PostLogStoreLogs" in actions(role) and managed_policies_of(role), role


# oss2 call -> the RAM action OSS authorises it as; constructors make no request.
OSS_CALLS = {
    "put_object": {"oss:PutObject"},
    "get_object": {"oss:GetObject"},
    "head_object": {"oss:GetObject"},
    "get_object_meta": {"oss:GetObject"},
    "delete_object": {"oss:DeleteObject"},
    "list_objects": {"oss:ListObjects"},
    "list_objects_v2": {"oss:ListObjects"},
    "ObjectIterator": {"oss:ListObjects"},
    "ObjectIteratorV2": {"oss:ListObjects"},
    "sign_url": set(),  # the request made with the URL is authorised by its method, below
}
OSS_CONSTRUCTORS = {"Bucket", "Auth", "AuthV2", "AuthV4", "ProviderAuthV4", "StsAuth", "AnonymousAuth"}


def oss_actions_in_code() -> set[str]:
    source = (SHARED / "cloud" / "oss_store.py").read_text(encoding="utf-8")
    calls = set(re.findall(r"(?:self\.bucket|self\._oss2|oss2)\.(\w+)\(", source)) - OSS_CONSTRUCTORS
    unmapped = calls - set(OSS_CALLS)
    assert not unmapped, f"oss_store.py calls {sorted(unmapped)}: map them to RAM actions here and in template.yml"
    needed = set().union(*(OSS_CALLS[c] for c in calls))
    for method in re.findall(r"_sign\(\s*\"(GET|PUT)\"", source):
        needed.add({"GET": "oss:GetObject", "PUT": "oss:PutObject"}[method])
    return needed


def test_oss_actions_cover_the_store_calls_on_our_bucket_only():
    assert text(props("Bucket")["BucketName"]) == "${BucketName}"
    ours = ("acs:oss:*:*:${BucketName}", "acs:oss:*:*:${BucketName}/*", "acs:oss:*:*:${CentralBucket}",
            "acs:oss:*:*:${CentralBucket}/*")
    for role in service_roles():
        if role == role_of("audit"):  # the audit only writes whole objects and lists: no delete
            assert actions(role, "oss") == oss_actions_in_code() - {"oss:DeleteObject"}
        else:
            assert actions(role, "oss") == oss_actions_in_code()
        for action in actions(role, "oss"):
            for res in resources_for(role, action):
                assert res in ours, (action, res)
        assert resources_for(role, "oss:ListObjects") == ["acs:oss:*:*:${BucketName}", "acs:oss:*:*:${CentralBucket}"]
    # the central bucket's statements exist only when one is given
    for lid, r in of_type("ALIYUN::RAM::ManagedPolicy").items():
        if "${CentralBucket}" in str(r["Properties"]["PolicyDocument"]):
            assert r["Condition"] in ("UseCentralBucket", "AuditCentral"), lid


def test_the_incidents_bucket_outlives_the_stack():
    assert RESOURCES["Bucket"].get("DeletionPolicy") == "Retain"


def test_fc_invoke_is_scoped_to_the_stages_that_are_started_or_restarted():
    role = role_of("on_ecs_event")
    assert role == role_of("reconcile")  # one service: ingest starts collect, reconcile restarts stages
    collect_service = text(props(service_of("collect"))["ServiceName"])
    stage_service = text(props(service_of("diagnose"))["ServiceName"])
    assert stage_service == text(props(service_of("notify"))["ServiceName"])
    assert actions(role, "fc") == {"fc:InvokeFunction"}
    allowed = set()
    for service, fn in ((collect_service, "collect"), (stage_service, "diagnose"), (stage_service, "notify")):
        prefix = "acs:fc:${ALIYUN::Region}:${ALIYUN::TenantId}:services/" + service
        allowed |= {prefix + "/functions/" + fn, prefix + ".*/functions/" + fn}
    assert set(resources_for(role, "fc:InvokeFunction")) == allowed
    env = FUNCTIONS["reconcile"]["EnvironmentVariables"]
    assert text(env["CRASHDIAG_FC_SERVICE"]) == collect_service and text(env["CRASHDIAG_FC_STAGE_SERVICE"]) == stage_service
    assert (env["CRASHDIAG_COLLECT_FUNCTION"], env["CRASHDIAG_DIAGNOSE_FUNCTION"], env["CRASHDIAG_NOTIFY_FUNCTION"]) == (
        "collect", "diagnose", "notify")
    assert not actions(role_of("collect"), "fc")  # collect starts nothing
    for r in service_roles():
        assert set(actions(r)) - ecs_actions_in_code() - ecs_actions_in_code("ecs_fleet.py") - oss_actions_in_code() <= {
            "fc:InvokeFunction", "mns:SendMessage", "log:PostLogStoreLogs"}


# -- event sources -----------------------------------------------------------------------------


def test_eventbridge_rule_routes_both_crash_types_to_on_ecs_event():
    ((_, rule),) = of_type("ALIYUN::EventBridge::Rule").items()
    p = rule["Properties"]
    assert p["EventBusName"] == "default"
    pattern = p["FilterPattern"]
    assert pattern["source"] == ["acs.ecs"]
    types = [t if isinstance(t, str) else t["prefix"] for t in pattern["type"]]
    for crash in CRASH_TYPES:
        assert crash in types
    assert len(types) <= 5
    # events of other kinds stay out
    assert not any("Maintenance" in t or "StateChange" in t for t in types)
    (target,) = p["Targets"]
    assert target["Type"] == "acs.fc.function"
    assert text(target["Endpoint"]).endswith("services/${ServiceName}.LATEST/functions/on_ecs_event")
    params = {pl["ResourceKey"]: pl for pl in target["ParamList"]}
    assert params["functionName"]["Value"] == "on_ecs_event" and "on_ecs_event" in FUNCTIONS
    assert text(params["serviceName"]["Value"]) == "${ServiceName}"
    assert params["Body"]["Form"] == "ORIGINAL"


def _sample_keys():
    """Keys as the pipeline writes them (docs/PIPELINE.md), for one incident."""
    inc = "incidents/cn-hangzhou/i-bp1crashdemo01/e-bp1crash0001/"
    return {
        "crash_log": inc + "crash.log",
        "written": [inc + "event.json", inc + "events/Executed.json", inc + "state/00-received.json",
                    inc + "state/20-collected.json", inc + "collect.json", inc + "guest-upload.log",
                    inc + "report.json", inc + "report.md", "reports/inbox/messages.txt/report.json",
                    "reports/inbox/messages.txt/report.md", "failures/2026-11-26/0123456789abcdef0123.json"],
    }


def _diagnose_accepts(key: str) -> bool:
    """Whether Pipeline.diagnose takes the key (it reaches the store) or refuses it."""
    from crashdiag.pipeline.stages import Pipeline
    from crashdiag.settings import Settings

    class Reached(Exception):
        pass

    class Store:
        def __getattr__(self, name):
            def call(*a, **k):
                raise Reached(name)
            return call

    try:
        Pipeline(Store(), None, None, Settings.from_env({})).diagnose(key)
    except Reached:
        return True
    except ValueError:
        return False
    raise AssertionError("diagnose finished without touching the store")


def test_oss_triggers_invoke_only_the_functions_they_name():
    triggers = oss_triggers()
    assert {t["FunctionName"] for t in triggers.values()} == {"diagnose", "notify"}
    for t in triggers.values():
        assert t["FunctionName"] in FUNCTIONS
        assert text(t["TriggerConfig"]["BucketName"]) == "${BucketName}"
        assert text(t["SourceArn"]) == "acs:oss:${ALIYUN::Region}:${ALIYUN::TenantId}:${BucketName}"
        assert all(e.startswith("oss:ObjectCreated:") for e in t["TriggerConfig"]["Events"])
        assert "oss:ObjectCreated:PutObject" in t["TriggerConfig"]["Events"]  # what put_object sends
        role = t["InvocationRole"]["Fn::GetAtt"][0]
        assert actions(role) == {"fc:InvokeFunction"}
        invoked = {r.rsplit("/", 1)[1] for r in resources_for(role, "fc:InvokeFunction")}
        assert t["FunctionName"] in invoked and invoked <= {"diagnose", "notify"}


def test_oss_triggers_fire_on_what_collect_writes_and_nothing_diagnose_writes():
    triggers = {lid: t for lid, t in oss_triggers().items() if t["FunctionName"] == "diagnose"}
    assert len(triggers) == 2

    keys = _sample_keys()
    inbox_event = json.loads((ROOT / "events" / "oss-object-created-inbox.json").read_text())
    inbox_key = inbox_event["events"][0]["oss"]["object"]["key"]
    for key in (keys["crash_log"], inbox_key):
        assert sum(trigger_matches(t, key) for t in triggers.values()) == 1, key
        assert _diagnose_accepts(key), key
    for key in keys["written"]:
        assert not any(trigger_matches(t, key) for t in triggers.values()), f"{key} would re-trigger diagnose"
    # a log of any name dropped into the inbox is taken too
    inbox = [t for t in triggers.values() if "Suffix" not in t["TriggerConfig"]["Filter"]["Key"]]
    assert len(inbox) == 1
    for name in ("messages", "vmcore-dmesg.txt", "kern.log.1"):
        key = inbox[0]["TriggerConfig"]["Filter"]["Key"]["Prefix"] + name
        assert trigger_matches(inbox[0], key) and _diagnose_accepts(key)


def test_notify_fires_once_per_report_and_never_on_what_it_writes():
    from crashdiag.notify import report_prefix

    triggers = {lid: t for lid, t in oss_triggers().items() if t["FunctionName"] == "notify"}
    assert len(triggers) == 3  # incident reports, inbox reports, incidents' early notices
    inc = "incidents/cn-hangzhou/i-bp1crashdemo01/e-bp1crash0001/"
    reports = [inc + "report.json", "reports/inbox/messages.txt/report.json", inc + "early.json"]
    for key in reports:
        assert sum(trigger_matches(t, key) for t in triggers.values()) == 1, key
        if key.endswith("report.json"):
            assert report_prefix(key)  # the notify stage takes it
    written = [inc + "notify.json", inc + "notify/notice.json", inc + "notify/dingtalk/a001-claim.json",
               inc + "notify/email/a001-sent.json", inc + "notify/email/done.json", inc + "report.md",
               "notify/pending/2026-11-26/i-bp1crashdemo01.e-bp1crash0001.json", "notify/rate/dingtalk/20261126T1000/00.json",
               "notify/digests/digest-20261126T100000-0123456789.dingtalk.json", "notify/throttle/dingtalk.json",
               inc + "waiting.json", inc + "early/notify/dingtalk/a001-claim.json", inc + "early/notify/email/done.json"]
    for key in written + _sample_keys()["written"]:
        assert not any(trigger_matches(t, key) for t in triggers.values()) or key in reports, f"{key} would trigger notify"
    for key in written:
        assert not any(trigger_matches(t, key) for t in oss_triggers().values()), f"{key} would trigger a function"


def test_timers_spell_enable_and_set_no_time_zone():
    """TriggerConfig's switch is Enable (aliyun/ros-templates resources/fc/function-invoker.yml);
    CRON_TZ is documented for FC 3.0 timers only, so an FC 2.0 cron is plain (UTC)."""
    timers = [t for t in (r["Properties"] for r in of_type("ALIYUN::FC::Trigger").values()) if t["TriggerType"] == "timer"]
    assert len(timers) >= 3
    for t in timers:
        cfg = t["TriggerConfig"]
        assert cfg.get("Enable") is True and "Enabled" not in cfg, t["TriggerName"]
        assert "CRON_TZ" not in cfg["CronExpression"] and "TZ=" not in cfg["CronExpression"]
        assert set(cfg) <= {"CronExpression", "Enable", "Payload"}
    assert "CRON_TZ=" not in (ROOT / "template.yml").read_text(encoding="utf-8")


def test_notify_flush_runs_on_a_timer():
    timers = [t for t in (r["Properties"] for r in of_type("ALIYUN::FC::Trigger").values()) if t["TriggerType"] == "timer"]
    flush = [t for t in timers if t["FunctionName"] == "notify_flush"]
    assert len(flush) == 1 and flush[0]["TriggerConfig"]["CronExpression"] == "@every 1m"
    env = FUNCTIONS["notify_flush"]["EnvironmentVariables"]
    assert env == FUNCTIONS["notify"]["EnvironmentVariables"]  # one outbox, one set of channels
    # a live send's claim must outlast the function that holds it
    assert int(env["NOTIFY_LEASE_SECONDS"]) > max(FUNCTIONS["notify"]["Timeout"], FUNCTIONS["notify_flush"]["Timeout"])
    for secret in ("DingTalkWebhook", "DingTalkSecret", "SmtpPassword"):
        assert PARAMETERS[secret].get("NoEcho") is True


def test_pipeline_still_writes_the_trigger_keys():
    source = (SHARED / "pipeline" / "stages.py").read_text(encoding="utf-8")
    assert re.search(r"_put\(f\"\{prefix\}crash\.log\"", source), "collect no longer writes <prefix>crash.log"
    assert '"incidents/' in source


def test_reconcile_runs_on_a_timer_and_its_leases_outlast_the_stages():
    timers = [t for t in (r["Properties"] for r in of_type("ALIYUN::FC::Trigger").values())
              if t["TriggerType"] == "timer" and t["FunctionName"] == "reconcile"]
    assert len(timers) == 1 and timers[0]["TriggerConfig"]["CronExpression"] == "@every 5m"
    env = FUNCTIONS["reconcile"]["EnvironmentVariables"]
    # a lease shorter than its function's Timeout would let a live invocation be taken over
    assert int(env["COLLECT_LEASE_SECONDS"]) > FUNCTIONS["collect"]["Timeout"]
    assert int(env["DIAGNOSE_LEASE_SECONDS"]) > FUNCTIONS["diagnose"]["Timeout"]
    from crashdiag.settings import Settings

    s = Settings()
    assert s.collect_lease_seconds == int(env["COLLECT_LEASE_SECONDS"]) and s.diagnose_lease_seconds == int(env["DIAGNOSE_LEASE_SECONDS"])


def test_fleet_rebuilds_on_a_timer_and_sends_one_daily_digest():
    timers = [t for t in (r["Properties"] for r in of_type("ALIYUN::FC::Trigger").values())
              if t["TriggerType"] == "timer" and t["FunctionName"] == "fleet"]
    payloads = sorted(t["TriggerConfig"]["Payload"] for t in timers)
    assert payloads == ["", '{"digest": true}', '{"readiness": true}']  # the weekly readiness digest
    env = FUNCTIONS["fleet"]["EnvironmentVariables"]
    assert {"OSS_BUCKET", "DINGTALK_WEBHOOK", "DINGTALK_SECRET", "SMTP_HOST", "MAIL_TO"} <= set(env)


def test_outputs_name_the_bucket_and_functions():
    outputs = TEMPLATE["Outputs"]
    assert outputs["BucketName"]["Value"] == {"Fn::GetAtt": ["Bucket", "Name"]}
    arns = {o["Value"]["Fn::GetAtt"][0] for o in outputs.values() if isinstance(o["Value"], dict)
            and o["Value"].get("Fn::GetAtt", [None, None])[1] == "ARN"}
    assert arns == set(FUNCTION_IDS.values())

