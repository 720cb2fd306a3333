"""What people read about how a crash log was (or was not) collected: a failure's reason, what
to do about it, and the collection notes, in each language CRASHDIAG_LANG offers.

The English is the wording the pipeline has always recorded (``collect.NEXT_STEP`` keeps
the English for each Cloud Assistant error code). The Chinese is written for an SRE reading
the DingTalk card: API names, error codes, paths and commands stay as they are.
"""

from __future__ import annotations

FAILURE: dict[str, dict[str, str]] = {
    "no_api": {"en": "no ECS API is configured", "zh": "未配置 ECS API"},
    "no_api_advice": {"en": "set credentials and region, or replay with --instances",
                      "zh": "请配置访问凭证和地域，或用 --instances 回放"},
    "windows": {"en": "{notice} (OSType {os}); no command was run on it",
                "zh": "Windows 实例，本工具不做诊断（OSType {os}）；未在实例上运行任何命令"},
    "windows_advice": {"en": "read the crash dump Windows wrote (C:\\Windows\\MEMORY.DMP or Minidump) with WinDbg, "
                             "or the Windows event log (BugCheck, event ID 1001)",
                       "zh": "用 WinDbg 分析 Windows 写下的转储文件（C:\\Windows\\MEMORY.DMP 或 Minidump），"
                             "或查看 Windows 事件日志（BugCheck，事件 ID 1001）"},
    "released": {"en": "the instance no longer exists (released after the crash)", "zh": "实例已不存在（宕机后被释放）"},
    "not_running": {"en": "the instance did not return to Running in time", "zh": "实例没有及时回到 Running 状态"},
    "ecs_error": {"en": "ECS API error {code}", "zh": "ECS API 调用出错：{code}"},
    "agent_offline": {"en": "the Cloud Assistant agent did not come online", "zh": "云助手 Agent 一直没有上线"},
    "never_finished": {"en": "the collection command never finished", "zh": "采集命令一直没有结束"},
    "ca_ended": {"en": "Cloud Assistant ended the command: {status} {code}", "zh": "云助手结束了命令：{status} {code}"},
    "timed_out": {"en": "the collection script ran past its timeout (Timeout)", "zh": "采集脚本运行超时（Timeout）"},
    "unreadable": {"en": "the collection script's output could not be read ({error})",
                   "zh": "无法解析采集脚本的输出（{error}）"},
    "boot_before": {"en": "the command ran in the boot before the crash (boot at {boot}, crash reboot at {reboot})",
                    "zh": "命令运行在宕机前的那次启动里（启动于 {boot}，宕机重启于 {reboot}）"},
    "no_log": {"en": "the guest holds no crash log", "zh": "实例内没有宕机日志"},
    "none_left": {"en": "the guest had none", "zh": "实例内没有宕机日志"},
    "console_empty": {"en": "no crash log could be collected: {why}, and the serial console was empty",
                      "zh": "{why}，串口控制台也没有输出"},
    "gone_advice": {"en": "nothing can be collected; if the instance was kept, check its snapshot or system disk",
                    "zh": "已无法采集；如果实例还保留着，请检查它的快照或系统盘"},
    "enable_kdump": {"en": "enable kdump (crashkernel= and the kdump service) and a persistent journal so the next "
                           "crash leaves a log; check the instance in the ECS console (VNC) for a boot problem",
                     "zh": "启用 kdump（crashkernel= 参数和 kdump 服务）并让 journal 持久保存，下次宕机才会留下日志；"
                           "在 ECS 控制台用 VNC 检查实例是否有启动问题"},
    "collect_died": {"en": "the crash log could not be collected: collection was started {attempts} times and never "
                           "finished (the function timed out or died each time)",
                     "zh": "采集启动了 {attempts} 次，每次都没有完成（函数每次都超时或异常退出）"},
    "collect_died_advice": {"en": "check the collect function's logs; the instance may need a manual look "
                                  "(VNC, serial console)",
                            "zh": "查看 collect 函数的日志；实例可能需要人工检查（VNC、串口控制台）"},
    "diagnose_died": {"en": "diagnosis did not finish after {attempts} attempts (the log may be too large or hostile "
                            "for the diagnose function's time and memory)",
                      "zh": "诊断尝试了 {attempts} 次都没有完成（日志可能太大或内容异常，超出了 diagnose 函数的时间和内存限制）"},
    "diagnose_died_advice": {"en": "open crash.log beside this report and read it by hand; raise the diagnose "
                                   "function's memory if it ran out",
                             "zh": "打开报告旁边的 crash.log 人工阅读；如果是内存不足，调高 diagnose 函数的内存"},
    "never_started": {"en": "collect could not be started (Function Compute refused every invocation)",
                      "zh": "collect 函数无法启动（函数计算拒绝了每一次调用）"},
    "never_ran": {"en": "{stage} was restarted {kicks} times and never ran", "zh": "{stage} 函数重启了 {kicks} 次，一次也没有运行"},
    "reconcile_advice": {"en": "check the function's logs and the failure queue; the instance may need a manual look",
                         "zh": "查看函数日志和失败队列；实例可能需要人工检查"},
    # collection notes
    "describe_failed": {"en": "DescribeInstances failed ({code}): the OS type is unknown, assumed Linux",
                        "zh": "DescribeInstances 调用失败（{code}）：操作系统类型未知，按 Linux 处理"},
    "capture_deadline": {"en": "waited {minutes} min for the kdump capture; at the deadline it had not finished "
                               "({seen}), so the console is all there is",
                         "zh": "等待 kdump 转储 {minutes} 分钟，到截止时间仍未完成（{seen}），只能使用串口控制台的输出"},
    "capture_hung": {"en": "the kdump capture showed no progress for {minutes} min ({seen}): treated as hung",
                     "zh": "kdump 转储 {minutes} 分钟没有进展（{seen}），按卡死处理"},
    "xregion_none": {"en": "the instance is in {region} and the incident bucket in {here}: the bucket's internal "
                           "endpoint is out of its reach and no public one could be signed, so only the excerpt was "
                           "collected, not the whole log",
                     "zh": "实例在 {region}，存储桶在 {here}：实例访问不到存储桶的内网 Endpoint，也签不出公网地址，"
                           "因此只采集了日志摘录，没有完整日志"},
    "xregion_public": {"en": "the instance is in {region}, the bucket in {here}: the upload goes over the bucket's "
                             "public endpoint",
                       "zh": "实例在 {region}，存储桶在 {here}：日志经存储桶的公网 Endpoint 上传"},
    "url_refused": {"en": "the upload URL had characters the guest refuses: the whole log was not uploaded",
                    "zh": "上传地址含有采集脚本拒绝的字符：没有上传完整日志"},
    "url_too_long": {"en": "the upload URL is {size} bytes, over the {limit} the guest accepts: the whole log was "
                           "not uploaded",
                     "zh": "上传地址长 {size} 字节，超过采集脚本接受的 {limit} 字节：没有上传完整日志"},
    "unreadable_note": {"en": "the collection script's output could not be read: {error}",
                        "zh": "无法解析采集脚本的输出：{error}"},
    "no_boot_time": {"en": "the guest did not report its boot time: the log may predate the crash reboot",
                     "zh": "实例没有报告启动时间：日志可能早于这次宕机重启"},
    "no_log_note": {"en": "the guest holds no crash log (no kdump, pstore, journal or syslog record)",
                    "zh": "实例内没有宕机日志（没有 kdump、pstore、journal 或 syslog 记录）"},
    "upload_failed": {"en": "the guest could not upload the whole log; only the excerpt was collected",
                      "zh": "实例没能上传完整日志，只采集到日志摘录"},
    "output_cut": {"en": "Cloud Assistant cut the output ({dropped} bytes dropped): the excerpt is partial",
                   "zh": "云助手截断了输出（丢弃 {dropped} 字节）：日志摘录不完整"},
    "waited": {"en": "waited {minutes} min ({checks} checks) for the guest while kdump saved its dump; last seen on "
                     "the console: {seen}",
               "zh": "kdump 保存转储期间等待实例 {minutes} 分钟（检查 {checks} 次）；串口控制台最后显示：{seen}"},
    "upload_missing": {"en": "the guest said it uploaded the log, but the object is missing; using the excerpt",
                       "zh": "实例报告已上传日志，但对象不存在；改用日志摘录"},
    "upload_empty": {"en": "the guest's upload is empty; using the excerpt", "zh": "实例上传的日志为空；改用日志摘录"},
    "kept_head_tail": {"en": "{lead} {size}, over {setting} ({cap}); kept the first {head} and the last {tail} of it, "
                             "with a marker line where {left} were left out",
                       "zh": "{lead} {size}，超过 {setting}（{cap}）；保留了开头 {head} 和结尾 {tail}，"
                             "中间 {left} 处用一行标记代替"},
    "lead_upload": {"en": "the guest uploaded", "zh": "实例上传的日志大小为"},
    "lead_log": {"en": "the log is", "zh": "日志大小为"},
    "gave_up": {"en": "gave up running the script again after {runs} tries: {why}",
                "zh": "脚本重试 {runs} 次后放弃：{why}"},
    "again": {"en": "{why}: running the script again", "zh": "{why}：重新运行脚本"},
    "from_console": {"en": "read from the serial console (the output of the last start): {why}",
                     "zh": "日志取自串口控制台（最近一次启动的输出）：{why}"},
    "script_not_run": {"en": "the guest could not run the collection script", "zh": "实例无法运行采集脚本"},
}

# collect.NEXT_STEP's (why, what to do) for each Cloud Assistant error code, in Chinese.
NEXT_STEP_ZH: dict[str, tuple[str, str]] = {
    "InstanceRestarted": ("脚本运行时实例重启了", ""),
    "ClientRestarted": ("脚本运行时云助手 Agent 重启了", ""),
    "ClientIsUpgrading": ("云助手 Agent 正在升级", ""),
    "ClientNotRunning": ("云助手 Agent 没有运行",
                         "启动 Agent：systemctl start aliyun.service（或 /etc/init.d/aliyun-service start）"),
    "ClientNotResponse": ("云助手 Agent 没有响应", "重启 Agent：systemctl restart aliyun.service"),
    "ClientNotOnline": ("云助手 Agent 没有连上服务端", "重启 Agent：systemctl restart aliyun.service"),
    "DeliveryTimeout": ("命令没能及时下发给 Agent", ""),
    "InstanceNotRunning": ("下发命令时实例不在运行", ""),
    "ExecutionInterrupted": ("命令被中断", ""),
    "TaskConcurrencyLimit": ("同时运行的云助手任务太多", ""),
    "ClientNetworkBlocked": ("实例访问不到云助手的服务端",
                             "放行到云助手的出方向 TCP 443、80 和 UDP 53（https://<region>.axt.aliyun.com、100.100.100.200）"),
    "SecurityGroupRuleDenied": ("安全组规则拒绝了对云助手的访问", "在报错提到的安全组里放行云助手的地址"),
    "ClientNeedUpgrade": ("云助手 Agent 版本太旧", "升级云助手 Agent"),
    "ExecutionTimeout": ("采集脚本运行超时", "如果实例读日志很慢，调大 COLLECT_COMMAND_TIMEOUT"),
    "ExecutionException": ("采集脚本无法运行", "查看采集记录（attempts）里的 ErrorInfo"),
    "ExitCodeNonzero": ("采集脚本执行失败", "查看采集记录（attempts）里的退出码"),
    "CommandNotApplicable": ("这个实例的操作系统不能运行 shell 脚本", ""),
    "AccountNotExists": ("实例上没有供云助手使用的 root 账号", ""),
    "DirectoryNotExists": ("实例上缺少工作目录", ""),
    "DefaultWorkingDirectoryNotAvailable": ("实例上 root 的主目录不可用", ""),
    "InvalidCommandText": ("云助手拒绝了命令内容", ""),
    "CommandContentDecodeError": ("云助手无法解码命令", ""),
    "InvalidSystemBuiltInParameter": ("云助手拒绝了一个内置参数", ""),
    "InstanceReleased": ("脚本运行时实例被释放了", ""),
    "InstanceNotExists": ("实例已不存在", ""),
    "InstanceDeregistered": ("托管实例已被注销", ""),
}


def say(lang: str, key: str, **fields: object) -> str:
    """FAILURE[key] in ``lang`` (English when the language has no wording), filled in."""
    words = FAILURE[key]
    return words.get(lang, words["en"]).format(**fields)


def step_words(lang: str, code: str, why: str, advice: str) -> tuple[str, str]:
    """A Cloud Assistant error code's (why, what to do) in ``lang``; the English given otherwise."""
    if lang == "zh" and code in NEXT_STEP_ZH:
        return NEXT_STEP_ZH[code]
    return why, advice


def join_advice(lang: str, parts: list[str]) -> str:
    return ("；" if lang == "zh" else "; ").join(parts)
