"""English for the panel's own strings (msgid: the Chinese shown by default).

Why a Python table: it is reviewed like code; `python -m admin.translations.en` rewrites
`en/LC_MESSAGES/messages.po` and `.mo` from it and from the strings pybabel extracts, and a
test fails when a string has no English or the compiled catalog is stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EN: dict[str, str] = {
    "名称": "Name", "发送对象": "Audience", "对象值": "Audience value", "内容": "Content", "状态": "Status",
    "发送时间": "Send at", "周期（cron）": "Repeat (cron)", "进度": "Progress", "内容类型": "Content type",
    "文字内容": "Text", "创建时间": "Created", "活动或操作不存在": "No such campaign or action",
    "已更新活动状态": "Campaign status updated", "活动不存在": "No such campaign",
    "已发送测试消息给 %(n)s 位客服": "Test message sent to %(n)s agents", "活动": "Campaign", "顾客": "Customer",
    "结果": "Outcome", "原因": "Reason", "任务": "Job", "更新时间": "Updated", "渠道": "Channel", "客服": "Agent",
    "开始": "Start", "首次响应": "First response", "结束": "End", "转人工原因": "Handoff reason",
    "满意度": "Satisfaction", "排队时间": "Queued at", "分配时间": "Assigned at", "结束方式": "Resolved by",
    "会话或客服不存在": "No such conversation or agent", "已转给 %(agent)s": "Transferred to %(agent)s",
    "无法转接：%(why)s": "Cannot transfer: %(why)s", "会话不存在": "No such conversation",
    "会话已经结束": "The conversation is already resolved", "会话已结束": "Conversation resolved", "时间": "Time",
    "方向": "Direction", "发送方": "Author", "得分": "Score", "会话": "Conversation", "类型": "Kind",
    "平台用户 id": "Platform user id", "昵称": "Nickname", "姓名": "Name", "手机": "Phone",
    "会员等级": "Member level", "专属客服": "Owner agent", "最近联系": "Last contact", "骚扰": "Spam",
    "标签": "Tags", "生日": "Birthday", "地址": "Address", "偏好": "Preferences", "备注": "Notes",
    "已关注": "Subscribed", "已拉黑": "Blocked", "累计消费": "Total spend", "订单": "Orders",
    "优惠券": "Coupons", "订单数": "Orders", "来源": "Source", "首次联系": "First contact", "颜色": "Color",
    "群名称": "Group name", "说明": "Description", "成员": "Members", "群": "Group", "入群时间": "Joined",
    "账号": "Account", "显示名": "Display name", "在线状态": "Presence", "绑定的 IM 账号": "Linked IM account",
    "启用": "Enabled", "接待上限": "Max open", "私海上限": "Max owned customers", "最近分配": "Last assigned",
    "面额/折扣": "Amount / percent", "最低消费": "Minimum spend", "有效天数": "Valid days", "券码": "Code",
    "发放时间": "Issued", "过期时间": "Expires", "使用时间": "Used", "订单号": "Order no.", "金额": "Amount",
    "下单": "Created", "付款": "Paid", "发货": "Shipped", "签收": "Delivered", "回访评分": "Revisit score",
    "包含": "contains", "问法": "Phrasings", "分类": "Category", "答案": "Answer", "命中": "Hits", "赞": "Likes",
    "踩": "Dislikes", "导入 id": "Import id", "启用所选 FAQ？": "Enable the selected FAQs?",
    "已启用 %(n)s 条": "%(n)s enabled", "停用": "Disable",
    "停用所选 FAQ？停用后机器人不再用它回答。": "Disable the selected FAQs? The bot will stop answering with them.",
    "已停用 %(n)s 条": "%(n)s disabled", "标准词": "Canonical word",
    "同义词（空格或逗号分隔）": "Synonyms (space or comma separated)", "请选择要导入的文件": "Choose a file to import",
    "导入失败，未导入任何内容：%(error)s": "Import failed, nothing was imported: %(error)s",
    "导入完成：新增 %(created)s 条，更新 %(updated)s 条，未变 %(unchanged)s 条":
        "Imported: %(created)s created, %(updated)s updated, %(unchanged)s unchanged",
    "顾客的问题": "Customer's question", "最接近的 FAQ": "Closest FAQ", "已处理": "Handled",
    "已新建 FAQ #%(id)s": "FAQ #%(id)s created", "已添加为问法": "Added as a phrasing",
    "标记为已处理": "Mark as handled", "已处理 %(n)s 条": "%(n)s marked as handled", "接收人": "Recipient",
    "尝试次数": "Attempts", "错误信息": "Error", "发送键": "Send key", "用户名": "Username", "角色": "Role",
    "需改密码": "Must change password", "失败次数": "Failed logins", "锁定至": "Locked until",
    "最近登录": "Last login", "新密码": "New password",
    "新建时必填；编辑时留空表示不修改（至少 8 位）": "Required for a new user; leave empty to keep (at least 8 characters)",
    "解除锁定": "Unlock", "已解除锁定": "Unlocked",
    "设置已保存，所有进程将在几秒内生效": "Settings saved; every process applies them within seconds",
    "知识库": "Knowledge base", "客户": "CRM", "营销": "Marketing", "系统": "System", "FAQ": "FAQ",
    "试一试 / 分类 / 导入导出": "Try it / categories / import-export", "同义词": "Synonyms",
    "未解决问题": "Unanswered questions", "消息": "Messages", "客服人员": "Agents", "群组": "Groups",
    "群成员": "Group members", "人群": "Segments", "群发活动": "Campaigns", "发送明细": "Deliveries",
    "已发优惠券": "Issued coupons", "发送失败": "Failed sends", "设置": "Settings", "后台用户": "Panel users",
    "已发送": "Sent", "失败": "Failed", "跳过": "Skipped", "待发送": "Pending",
    "查看每位顾客的发送结果": "See each recipient's outcome", "排期发送": "Schedule", "暂停": "Pause",
    "继续": "Resume", "取消": "Cancel", "测试发送（发给所有客服）": "Test send (to every agent)",
    "渠道及其密钥在配置文件中设置：": "Channels and their secrets are set in the config file:",
    "转给客服": "Transfer to", "转接": "Transfer", "结束会话": "Resolve", "消息记录": "Messages",
    "机器人": "Bot", "还没有消息": "No messages yet", "试一试 / 导入导出": "Try it / import-export",
    "试一试：机器人会怎么回答": "Try it: what would the bot answer",
    "输入顾客可能问的话，例如：发货要多久": "Type what a customer might ask, e.g. 发货要多久", "试一试": "Try it",
    "机器人会回答": "The bot would answer", "阈值": "threshold",
    "机器人没有把握（最高分低于阈值 %(t)s），会给出推荐问题或转人工。":
        "The bot is not sure (best score below the threshold %(t)s): it suggests questions or hands off.",
    "最接近的问法": "Closest phrasing", "没有相近的问法": "No similar phrasing", "FAQ 数": "FAQs",
    "导入": "Import",
    'JSON Lines（每行 {"id", "questions": [...], "answer", "category"}）或 Excel 导出的 CSV（UTF-8）。同 id 的 FAQ 会被更新；文件有错时不导入任何内容。':
        'JSON Lines (one {"id", "questions": [...], "answer", "category"} per line) or CSV saved by Excel '
        '(UTF-8). An FAQ with the same id is updated; a file with a mistake imports nothing.',
    "导出": "Export", "导出 CSV（Excel）": "Export CSV (Excel)", "导出 JSONL": "Export JSONL", "秒": "s",
    "分钟": "min", "数据看板": "Dashboard", "时区": "Time zone", "退出登录": "Log out", "今日": "Today",
    "近 30 天": "Last 30 days", "进线消息": "Messages in", "机器人解答率": "Bot answer rate", "转人工": "Handoffs",
    "人工回复率": "Agent reply rate", "人评价": "ratings", "当前排队": "Queue now", "人工会话中": "With agents now",
    "待回复": "Awaiting reply", "最长等待": "Longest wait", "超过响应时限": "Past the response limit",
    "响应时限": "Response limit", "排队中或客服尚未回复顾客最新消息的会话": "Queued, or the agent has not answered the customer's latest message",
    "等待": "Waiting", "顾客等人工回复多久了（排队中，或客服尚未回复其最新消息）": "How long the customer has waited for a person (queued, or the agent has not answered their latest message)",
    "%(n)s 秒": "%(n)s s", "%(n)s 分钟": "%(n)s min", "%(h)s 小时 %(m)s 分钟": "%(h)s h %(m)s min",
    "近 30 天趋势": "Last 30 days", "客服工作量（近 30 天）": "Agent workload (30 days)",
    "学习闭环（近 30 天）": "Learning loop (last 30 days)", "未解答问题": "Unanswered questions",
    "每天未解答的问题、当天处理的问题组与问题，以及自助解决率": "unanswered questions per day, the groups and questions handled that day, and the self-service rate",
    "已处理问题组": "Groups handled",
    "自助解决率": "Self-service rate",
    "客服绩效（近 30 天）": "Agents (last 30 days)", "接待": "Assigned", "已解决": "Resolved",
    "进行中": "Open", "回复率": "Reply rate", "还没有客服": "No agents yet", "机器人解答": "Bot answers",
    "话术": "Messages", "现在：": "Now: ", "服务中": "open", "非服务时间": "closed",
    "全天候服务（忽略下面的时间）": "Always open (ignore the hours below)",
    "休息日（每行一个 YYYY-MM-DD）": "Holidays (one YYYY-MM-DD per line)", "其他设置（JSON）": "Other settings (JSON)",
    "保存设置": "Save settings", "新建为 FAQ": "Promote to a new FAQ", "新建 FAQ": "Create FAQ",
    "添加为已有 FAQ 的问法": "Add as a phrasing of an existing FAQ", "添加问法": "Add phrasing",
    "登录 kefu 客服后台": "Log in to the kefu panel", "密码": "Password", "登录": "Log in",
    "修改密码": "Change password", "首次登录请先设置新密码（至少 8 位）。": "Set a new password first (at least 8 characters).",
    "确认新密码": "Confirm new password", "保存": "Save", "在线": "online", "按相似问题分组处理": "Handle similar questions together",
    "未解决问题（按相似分组）": "Unanswered questions (similar ones grouped)",
    "低评分 FAQ": "Low-rated FAQs", "顾客评价中“没帮助”占比最高的答案，建议优先修改。":
        "The answers customers most often rated unhelpful: rewrite these first.",
    "FAQ 列表": "FAQ list", "踩的占比": "Dislike share", "修改": "Edit", "暂无低评分 FAQ": "No low-rated FAQs",
    "同一组的问题一起处理：新建为 FAQ（每个不同说法成为一个问法），或添加为已有 FAQ 的问法。":
        "Handle a group at once: promote it to a new FAQ (each distinct wording becomes a phrasing) or add it to an existing FAQ's phrasings.",
    "逐条列表": "One by one", "表单已过期，请重试": "The form expired, please try again",
    "登录失败次数过多，请 15 分钟后再试": "Too many failed logins, try again in 15 minutes",
    "用户名或密码错误（多次失败将暂时锁定）": "Wrong username or password (repeated failures lock the account for a while)",
    "两次输入的密码不一致": "The two passwords differ", "密码已修改": "Password changed",
    "没有权限访问该页面": "You may not open that page", "机器人接待": "bot", "排队中": "queued",
    "人工接待中": "with an agent", "已结束": "resolved", "已经是这位客服": "already with this agent",
    "该客服已停用": "the agent is deactivated", "该客服已下线": "the agent is offline",
    "该客服接待已满": "the agent is at capacity", "会话已不在人工接待中": "the conversation is no longer with an agent",
    "草稿": "draft", "已排期": "scheduled", "发送中": "sending", "已暂停": "paused", "已完成": "done",
    "已取消": "cancelled",
    "%(done)s/%(total)s 已发送 · 失败 %(failed)s · 跳过 %(skipped)s":
        "%(done)s/%(total)s sent · %(failed)s failed · %(skipped)s skipped", "首页": "Home", "筛选条件（JSON）": "Filter (JSON)", "没有未解决的问题": "No unanswered questions", "离开": "away", "下线": "offline",
    "密码至少 %(n)s 位": "Password must be at least %(n)s characters",
    "新密码不能与旧密码相同": "The new password must differ from the old one", "未知角色": "Unknown role",
    "不能取消自己的管理员权限或停用自己": "You cannot remove your own admin role or deactivate yourself",
    "不能删除自己": "You cannot delete yourself",
    "表头必须包含答案（answer）和问法（questions）两列": "The header must name the answer and questions columns",
    "不是 UTF-8 文本（在 Excel 中请另存为“CSV UTF-8”）": "Not UTF-8 text (in Excel: save as “CSV UTF-8”)",
    "不是 UTF-8 文本": "Not UTF-8 text", "%(source)s 第 %(line)s 行：%(problem)s": "%(source)s, line %(line)s: %(problem)s",
    "%(source)s：%(problem)s": "%(source)s: %(problem)s",
    "未命中": "No confident match", "回答后顾客转人工": "Asked for a human after the answer",
    "顾客点踩": "Rated unhelpful", "顾客要求转人工": "Customer asked for a human", "人工优先": "Human first",
    "机器人没有把握": "Bot not confident", "机器人多次未能回答": "Bot could not answer repeatedly",
    "原客服已下线": "Previous agent went offline", "客服转接": "Transferred by an agent", "回访低分": "Low revisit score",
    "客服结束": "By the agent", "后台结束": "In the panel", "超时自动结束": "Idle timeout", "顾客结束": "By the customer",
    "满减（元）": "Amount off (¥)", "折扣（%）": "Percent off (%)",
    "留空则自动生成": "Leave empty to generate one", "留空则按优惠券的有效天数": "Leave empty for the coupon's validity",
    "随消息发券": "Coupon with the message", "每位收件人各得一张，文字里用 {coupon} 写入券码":
        "One for each recipient; write {coupon} in the text for its code", "不发券": "No coupon",
    "筛选条件有误：%(error)s": "The filter is not valid: %(error)s", "没有这个标签：%(tags)s": "No such tag: %(tags)s",
    "标签「%(name)s」已存在": "The tag %(name)s already exists",
    "发送批次": "Run", "发送队列键": "Outbox key", "附加数据": "Payload", "当前会话": "Current conversation",
    "到期提醒时间": "Expiry reminder sent", "平台用户 ID": "Platform user id", "手机号": "Phone", "商品": "Items",
    "事件时间": "Event time", "退款": "Refunded", "回访时间": "Revisited", "规范化文本": "Normalized text",
    "收到": "Incoming", "发出": "Outgoing", "已下单": "placed", "已付款": "paid", "已发货": "shipped",
    "已签收": "delivered", "已退款": "refunded", "全部顾客": "All customers", "已排队发送": "Queued to send",
    "正在发送": "Sending", "顾客数据已删除": "Customer data erased", "顾客已拉黑": "Customer blocked",
    "顾客已取消关注": "Customer unsubscribed", "没有可发送的内容": "Nothing to send",
    "未设置消息内容": "No message text configured", "活动没有内容": "The campaign has no content",
    "超出48小时客服窗口，且没有模板消息": "Outside the 48-hour service window and no template message",
    "平台发送失败": "The platform send failed", "超出48小时客服窗口": "Outside the 48-hour service window",
    "超出回复条数限制": "Reply limit reached",
    "平台拒绝了这条消息，或多次重试仍未成功": "The platform refused the message, or retries kept failing",
    "顾客超过48小时未发消息，平台不允许主动发送":
        "The customer has not written for over 48 hours; the platform does not allow sending",
    "已达到平台对本次互动的回复条数上限": "The platform's reply limit for this exchange was reached",
    "管理员": "Admin", "运营": "Operator",
    "当前密码": "Current password", "当前密码不正确": "The current password is wrong",
    "修改后，其他设备上的登录将失效。": "Changing it logs you out everywhere else.",
    # groups at the size shops have (issue 24): the members page and adding in bulk
    "找不到这位顾客": "No such customer", "该顾客的资料已删除，不再加入": "This customer's data was erased; not added",
    "多个渠道有这个 openid：请加一列渠道（channel）":
        "This openid is on several channels: add a channel column",
    "不是顾客编号": "Not a customer number", "文件是空的": "The file is empty",
    "不是 UTF-8 或 GB18030 文本": "Not UTF-8 or GB18030 text",
    "不是 CSV 文本（Excel 文件请另存为 CSV）": "Not CSV text (save an Excel file as CSV)",
    "CSV 格式有误": "Malformed CSV",
    "表头要有一列顾客编号（客户编号 / customer_id）或 openid":
        "The header needs a customer number column (客户编号 / customer_id) or an openid column",
    "「%(group)s」新增 %(added)s 位成员，%(already)s 位已在群中":
        "%(group)s: %(added)s members added, %(already)s were already in the group",
    "%(n)s 位顾客不存在或资料已删除，未加入": "%(n)s customers do not exist or were erased: not added",
    "加入群组…": "Add to group…", "请选择群组": "Choose a group", "没有选择顾客": "No customers selected",
    "%(n)s 位 · 管理成员": "%(n)s · manage members", "群组不存在": "No such group",
    "已从「%(group)s」移除 %(n)s 位成员": "%(n)s members removed from %(group)s",
    "群组或人群不存在": "No such group or segment",
    "文件有误，未加入任何人：第 %(line)s 行：%(error)s": "Bad file, nobody was added: line %(line)s: %(error)s",
    "文件有误，未加入任何人：%(error)s": "Bad file, nobody was added: %(error)s",
    "%(n)s 行未能加入，见下方列表": "%(n)s rows added nobody: see the list below",
    "这位顾客已在该群中": "This customer is already in the group",
    "加入群组": "Add to a group", "已选择 %(n)s 位顾客。": "%(n)s customers selected.",
    "符合顾客列表当前搜索和筛选的顾客：%(n)s 位（已删除资料的顾客不会加入）。":
        "Customers matching the customer list's current search and filters: %(n)s (erased ones are not added).",
    "加入": "Add", "返回": "Back", "已在群中的顾客不会重复加入。": "Customers already in the group are not added twice.",
    "还没有群组。": "No groups yet.", "新建群组": "New group",
    "把当前搜索和筛选出的全部顾客加入一个群组": "Add every customer the current search and filters match to a group",
    "筛选结果全部加入群组…": "Add all results to a group…", "查看、搜索、移除，批量加入": "view, search, remove, add in bulk",
    "编辑群": "Edit group", "顾客编号、昵称、姓名、手机或平台用户 id": "Customer number, nickname, name, phone or platform id",
    "搜索": "Search", "清除搜索": "Clear search", "未能加入的行": "Rows that added nobody", "行": "Line",
    "另有 %(n)s 行未列出": "%(n)s more rows not listed", "移除": "Remove", "没有符合的成员": "No matching members",
    "群里还没有成员": "No members yet", "移除所选": "Remove selected", "批量加入": "Add in bulk",
    "从顾客列表": "From the customer list",
    "在顾客列表中勾选后选“加入群组…”，或按搜索和筛选把全部结果加入。":
        "Tick customers in the customer list and choose “Add to group…”, or add everything its search and filters match.",
    "打开顾客列表": "Open the customer list", "从人群": "From a segment", "还没有人群。": "No segments yet.",
    "新建人群": "New segment", "从 CSV 文件": "From a CSV file",
    "每行一个顾客编号（顾客列表中的 #）或 openid；或用表头指明列：客户编号 / customer_id、openid、渠道 / channel。UTF-8 或 GB18030。不存在的会逐行列出；文件有误时不加入任何人。":
        "One customer number (the # in the customer list) or openid per line; or a header naming the columns: "
        "客户编号 / customer_id, openid, 渠道 / channel. UTF-8 or GB18030. Rows naming nobody are listed; "
        "a file with a mistake adds nobody.",
    # campaigns: progress, sends in doubt, the paths before sending (issue 24)
    "结果未知": "Outcome unknown", "排队": "Queued", "收件人已全部列出": "All recipients listed",
    "已交给平台，但发送进程中断，平台是否送达未知":
        "Handed to the platform, but the sending process stopped: whether it arrived is unknown",
    "%(done)s/%(total)s 已发送 · 排队 %(queued)s · 发送中 %(sending)s · 失败 %(failed)s · 结果未知 %(in_doubt)s · 跳过 %(skipped)s":
        "%(done)s/%(total)s sent · queued %(queued)s · sending %(sending)s · failed %(failed)s · "
        "unknown %(in_doubt)s · skipped %(skipped)s",
    "请先勾选确认：结果未知的消息可能已经送达，重发会让这些顾客收到两次":
        "Tick the confirmation first: messages with an unknown outcome may have arrived, and resending "
        "gives those customers a second copy",
    "已重新排队 %(n)s 条结果未知的消息": "%(n)s messages with an unknown outcome queued again",
    "有 %(n)s 位顾客的消息已交给平台，但发送进程在平台答复被记录前中断：平台可能已经送达，也可能没有。":
        "The message to %(n)s customers was handed to the platform, but the sending process stopped before "
        "the platform's answer was recorded: it may or may not have arrived.",
    "我知道：其中已送达的顾客会再收到一次（重复的营销消息可能招致投诉、拉黑，平台也可能处罚）":
        "I understand: those who did get it will get it twice (doubled marketing messages bring complaints "
        "and blocks, and the platform may penalise the account)",
    "重发结果未知的消息": "Resend the ones with an unknown outcome",
    "公众号群发：%(jobs)s 批，平台已受理 %(accepted)s 批，已回报 %(reported)s 批；回报合计 %(total)s 人，发送成功 %(sent)s，失败 %(errors)s":
        "Official Account mass sends: %(jobs)s jobs, %(accepted)s accepted, %(reported)s reported; reported "
        "%(total)s followers, %(sent)s sent, %(errors)s failed",
    "现在发送的话": "If sent now", "对象人数": "Audience", "客服消息（48小时内互动过）":
        "Customer-service message (interacted within 48 hours)", "模板消息": "Template message",
    "公众号群发（按 openid 列表）": "Mass send (openid list)", "无法送达（超出48小时）": "Unreachable (outside 48 hours)",
    "不发送（拉黑、取关、已删除）": "Not sent (blocked, unsubscribed, erased)",
    "群发额度：服务号每位粉丝每月最多收到 %(per)s 条群发消息（超出的对该粉丝发送失败）；本月已群发 %(jobs)s 批。群发无法带昵称等个人信息。":
        "Mass-send allowance: a service account's follower receives at most %(per)s mass messages a month (more "
        "fail for that follower); %(jobs)s mass jobs sent this month. A mass send cannot carry nicknames or "
        "other personal details.",
    # the campaign composer (issue 25)
    "不重复（只发一次）": "No repeat (send once)", "每天": "Every day", "每周": "Every week", "每月": "Every month",
    "星期一": "Monday", "星期二": "Tuesday", "星期三": "Wednesday", "星期四": "Thursday", "星期五": "Friday",
    "星期六": "Saturday", "星期日": "Sunday", "%(name)s（%(n)s 人）": "%(name)s (%(n)s people)", "全部": "All",
    "客户群": "Customer groups", "客户筛选": "Segments", "不重复": "No repeat", "重复": "Repeat",
    "从列表中选择；括号里是现在的人数": "Pick from the list; the number in brackets is how many it holds now",
    "可用占位符：{nickname} 昵称、{level} 会员等级、{coupon} 券码（需选择随消息发券）":
        "Placeholders: {nickname} nickname, {level} member level, {coupon} coupon code (choose a coupon to send)",
    "重复发送": "Repeat", "每周的哪天": "Day of the week", "每月的几号": "Day of the month",
    "重复发送的时间": "Repeat at", "店铺时区的 时:分，如 10:00": "HH:MM in the shop's time zone, e.g. 10:00",
    "店铺时区；留空表示确认后立即发送": "Shop time zone; empty: send as soon as confirmed",
    "高级：cron 表达式": "Advanced: cron expression",
    "一般不用填；填写后代替上面的重复设置（分 时 日 月 周，店铺时区）":
        "Usually left empty; when filled it replaces the repeat above (min hour day month weekday, shop time zone)",
    "注意：发送对象现在没有顾客（0 人），这个活动还不能发送":
        "Note: the audience has no customers now (0 people); this campaign cannot be sent yet",
    "请先在确认页核对人数和预览，再勾选确认": "Check the count and the preview on the confirmation page, then tick to confirm",
    "已安排发送给 %(n)s 位顾客": "Scheduled to %(n)s customers",
    "发送对象里没有顾客（0 人），不能发送": "The audience has no customers (0 people): nothing to send",
    "现在 %(n)s 人：客服消息可达 %(cs)s，模板消息 %(tpl)s，公众号群发 %(mass)s，无法送达 %(none)s，不发送 %(refused)s":
        "%(n)s people now: customer-service message %(cs)s, template message %(tpl)s, 公众号 mass send %(mass)s, "
        "unreachable %(none)s, not sent %(refused)s",
    "没有编号为 %(n)s 的顾客": "No customer number %(n)s", "已发送测试消息给顾客 %(name)s": "Test message sent to customer %(name)s",
    "确认后立即发送": "As soon as confirmed", "确认发送：%(name)s": "Confirm sending: %(name)s",
    "这个活动现在不能发送：": "This campaign cannot be sent now:", "去修改": "Edit it", "%(n)s 人": "%(n)s people",
    "预览": "Preview", "顾客 %(name)s 看到的是：": "Customer %(name)s reads:", "顾客看到的是：": "The customer reads:",
    "占位符": "Placeholder", "此人的内容": "For this customer",
    "（示例：每人一张，券码各不相同）": "(a sample: each recipient gets their own code)",
    "我已核对预览，确认发送给 %(n)s 位顾客": "I have checked the preview: send to %(n)s customers",
    "确认发送给 %(n)s 位顾客": "Send to %(n)s customers", "返回活动": "Back to the campaign",
    "处理时间": "Handled at",
    "这些 FAQ 问法含转人工关键词：FAQ 有把握时机器人照常回答，没把握时会转人工；“转人工”“人工客服”等明确要求总是转人工。":
        "These FAQ phrasings contain a handoff keyword: the bot answers them when the FAQ is confident, and hands "
        "them to a person when it is not; an explicit request such as 转人工 or 人工客服 always goes to a person.",
    "「%(q)s」含关键词「%(k)s」": "“%(q)s” contains the keyword “%(k)s”", "预览并确认发送…": "Preview and confirm sending…", "测试发送给": "Test send to", "所有在职客服": "All active agents",
    "或顾客编号": "or customer number", "如 12": "e.g. 12", "测试发送": "Test send",
    # settings page (issue 25: every setting a form field)
    "FAQ 回答下附评价卡片（回复 1 有用 / 2 没用）": "Rating cards under FAQ answers (reply 1 helpful / 2 not)",
    "专属客户多久未联系退回公海（天）": "Owned customers return to the public pool after no contact for (days)",
    "数据保留": "Data retention", "优惠券到期提醒": "Coupon expiry reminder", "签收回访": "Post-delivery follow-up",
    "沉睡客户唤醒": "Win back dormant customers", "生日祝福": "Birthday greeting",
    "转人工后、客服回复前顾客再发消息时的确认语（留空 = 不发）":
        "Acknowledgement when the customer writes after a handoff, before the agent replies (empty = none)",
    "顾客的评价计入 FAQ 的赞/踩，帮您找出答得不好的问题。":
        "Ratings count as the FAQ's likes/dislikes, so you find the answers that fall short.",
    "超过这么多天没有联系的专属客户回到公海，其他客服可以领取。":
        "Owned customers with no contact for this many days return to the public pool for other agents to claim.",
    "已结束的记录保留多少天后清理；0 = 永久保留。": "How many days finished records are kept; 0 = keep forever.",
    "累计消费或订单数任一达到门槛即升级；某一列全部留空 = 不按这一项评级。门槛须递增。":
        "Reaching either the spend or the order threshold qualifies; leave a whole row empty to not rate by it. "
        "Thresholds must increase.",
    "优惠券到期前提醒顾客使用。可用 {nickname} {coupon} {expires}。":
        "Reminds customers to use a coupon before it expires. Placeholders: {nickname} {coupon} {expires}.",
    "订单签收后询问满意度；低分的会话转人工跟进。可用 {nickname} {order}。":
        "Asks for satisfaction after delivery; low scores go to an agent. Placeholders: {nickname} {order}.",
    "很久没有联系的顾客，发一条消息（可附优惠券）请他回来。可用 {nickname} {coupon}。":
        "Invites customers not heard from in a long time back, optionally with a coupon. "
        "Placeholders: {nickname} {coupon}.",
    "顾客生日当天（店铺时区）发送祝福，每年一次。可用 {nickname} {coupon}。":
        "Greets customers on their birthday (shop's time zone), once a year. Placeholders: {nickname} {coupon}.",
    "超过 48 小时互动窗口时改用模板消息；模板 ID 留空 = 跳过这些顾客。":
        "Outside the 48-hour window a template message is used instead; empty template ID = skip those customers.",
    "天数": "Days", "几分及以下转人工跟进": "Scores at or below this go to an agent", "附带优惠券": "Coupon attached",
    "消息内容": "Message text", "模板 ID": "Template ID", "模板字段（每行一个：字段=值）": "Template fields (one per line: field=value)",
    "到期前几天提醒": "Days before expiry", "签收后几天回访": "Days after delivery",
    "多少天未联系算沉睡": "Days without contact to count as dormant",
    "发送队列（已完成）保留天数": "Outbox (finished) kept for days",
    "群发/定时任务发送记录保留天数": "Campaign/job delivery records kept for days",
    "聊天消息保留天数": "Chat messages kept for days", "升级时通知顾客": "Notify the customer on upgrade",
    "升级和降级都通知": "Notify on upgrade and downgrade", "不通知": "Do not notify",
    "等级变化通知（{level} = 新等级）": "Level change message ({level} = new level)", "累计消费（元）": "Total spend (yuan)",
    "会员与客户": "Members and customers", "等级变化时": "When the level changes", "定时消息": "Scheduled messages",
    "其他设置": "Other settings",
}

# 营销 › 渠道活码 (admin/channel_code_views.py, issue 18)
EN.update({
    "选项无效": "Invalid choice", "过期时间格式无效，应为 2026-12-31T23:59": "Invalid expiry; write it as 2026-12-31T23:59",
    "请选择一个公众号渠道": "Choose an Official Account channel",
    "无法连接微信接口：%(why)s": "Cannot reach the WeChat API: %(why)s",
    "已创建活码：%(name)s": "Channel code created: %(name)s", "渠道活码": "Channel codes",
    "已过期：扫码的顾客按普通关注处理": "Expired: customers who scan it are welcomed as plain followers",
    "下载 PNG": "Download PNG", "公众号": "Official Account", "永久二维码": "Permanent QR code",
    "临时二维码": "Temporary QR code", "永久": "Never", "加入分组": "Add to group", "欢迎语": "Welcome text",
    "发放优惠券": "Coupon to issue", "二维码地址": "QR code URL", "扫码次数": "Scans", "扫码顾客": "Customers",
    "新关注": "New followers", "优惠券已用": "Coupons used", "7 天订单 / 金额": "Orders / revenue in 7 days",
    "30 天订单 / 金额": "Orders / revenue in 30 days",
    "顾客扫码关注公众号（或已关注的顾客扫码）时：打标签、加入分组、发欢迎语和优惠券，每位顾客每个活码只生效一次。":
        "When a customer scans a code to follow the Official Account (or scans it as a follower): tags, group, "
        "welcome and coupon, once per customer and code.",
    "还没有活码": "No channel codes yet", "新建活码": "New channel code",
    '配置文件中没有公众号渠道（kind = "wechat_mp"）': 'The config file has no Official Account channel (kind = "wechat_mp")',
    "打标签（逗号分隔）": "Tags to add (comma separated)", "不加入": "None",
    "欢迎语（留空用默认欢迎语）": "Welcome text (empty: the shop's welcome message)", "不发": "None",
    "过期时间（可选，30 天内为临时二维码）": "Expires (optional; within 30 days makes a temporary QR code)",
    "创建活码": "Create code", "活码不存在": "No such channel code",
})

# 营销 › 客户群群发, 入群欢迎语, 联系我活码 (admin/group_message_views.py, group_welcome_views.py,
# contact_way_views.py; issue 18)
EN.update({
    "企业微信客户群": "WeCom customer groups",
    "企业微信客户群（群发到群，由群主确认）": "WeCom customer groups (sent to the groups, confirmed by their owners)",
    "请选择一个企业微信渠道": "Choose a WeCom channel", "无法连接企业微信接口：%(why)s": "Cannot reach the WeCom API: %(why)s",
    "已创建联系我活码：%(name)s": "Contact-way code created: %(name)s", "联系我活码": "Contact-way codes",
    "排队发送": "Queued", "等待群主确认": "Waiting for the owner", "未发送": "Not sent",
    "全部企业微信客户群（%(n)s 个群）": "Every WeCom customer group (%(n)s groups)",
    "%(sent)s/%(total)s 个群已发送 · 等待群主确认 %(waiting)s · 失败 %(failed)s · 排队 %(queued)s · 结果未知 %(in_doubt)s · "
    "未发送 %(skipped)s": "%(sent)s/%(total)s groups sent · waiting for the owner %(waiting)s · failed %(failed)s · "
                         "queued %(queued)s · in doubt %(in_doubt)s · not sent %(skipped)s",
    "无法查询企业微信：%(why)s": "Cannot ask WeCom: %(why)s",
    "已查询企业微信：%(sent)s 个群新发送，%(failed)s 个群失败": "Asked WeCom: %(sent)s groups newly sent, %(failed)s failed",
    "客户群群发": "Group campaigns", "已保存入群欢迎语：%(name)s": "Group welcome saved: %(name)s",
    "欢迎语不存在": "No such group welcome", "无法删除：%(why)s": "Cannot delete: %(why)s",
    "已删除入群欢迎语：%(name)s": "Group welcome deleted: %(name)s", "入群欢迎语": "Group welcomes",
    "顾客扫企业微信「联系我」二维码添加员工时：打标签、加入分组、发欢迎语和优惠券，每位顾客每个活码只生效一次。":
        "When a customer scans a WeCom contact-way code to add an employee: tags, group, welcome and coupon, "
        "once per customer and code.",
    "二维码": "QR code", "添加次数": "Adds", "企业微信二维码图片": "WeCom's QR image",
    "还没有联系我活码": "No contact-way codes yet", "新建联系我活码": "New contact-way code",
    '配置文件中没有企业微信渠道（kind = "wecom"）': 'The config file has no WeCom channel (kind = "wecom")',
    "企业微信": "WeCom", "接待成员的企业微信账号（逗号分隔）": "Employees' WeCom userids (comma separated)",
    "群发到企业微信客户群：企业微信把消息交给每位群主，由群主在企业微信里确认发送。每个客户群每天只能收到一条群发。":
        "Campaigns to WeCom customer groups: WeCom gives the message to each group's owner, who sends it from "
        "WeCom. A customer group receives at most one group message a day.",
    "还没有群发到客户群的活动": "No campaign to customer groups yet", "查看": "Show", "群主": "Owner",
    "这个活动还没有发送": "This campaign has not been sent yet",
    "现在查询群主是否已发送": "Ask WeCom now whether the owners have sent",
    "顾客加入企业微信客户群时收到的欢迎语。保存时先提交给企业微信，企业微信接受后才保存；群主在企业微信里选用。":
        "What a customer reads on joining a WeCom customer group. Saving sends it to WeCom first and keeps it only "
        "once WeCom took it; owners pick it in WeCom.",
    "文字": "Text", "图片": "Image", "链接": "Link", "删除": "Delete", "还没有入群欢迎语": "No group welcomes yet",
    "修改欢迎语": "Change the welcome", "新建欢迎语": "New welcome", "图片网址（可选）": "Image URL (optional)",
    "链接标题（可选）": "Link title (optional)", "链接网址": "Link URL", "链接封面图网址": "Link cover image URL",
    "链接描述": "Link description", "新建时通知群主": "Tell the owners when it is created",
    "这些客户群今天已有一条群发（企业微信：每个客户群每天只能收到一条），今天发送时会跳过：%(names)s":
        "These customer groups already had their group message today (WeCom: one a day per group) and are "
        "skipped if it is sent today: %(names)s",
})

# issue 25 (operator-2): search boxes, settings labels, group kinds
EN.update({
    "搜索：%(fields)s": "Search: %(fields)s", "、": ", ",
    "快闪群": "Flash group", "直播群": "Live-stream group", "普通群": "Regular group", "会员群": "Members group",
    "兴趣群": "Interest group", "机器人优先": "Bot first", "混合（机器人没把握时转人工）": "Mixed (a person when the bot is unsure)",
    "周一": "Monday", "周二": "Tuesday", "周三": "Wednesday", "周四": "Thursday", "周五": "Friday", "周六": "Saturday",
    "周日": "Sunday", "接待模式": "Reception mode", "欢迎卡片问题（每行一个）": "Welcome card questions (one per line)",
    "转人工关键词（每行一个）": "Handoff keywords (one per line)",
    "连续几次答不上来后转人工（0 = 不自动转）": "Hand off after this many unanswered in a row (0 = never)",
    "FAQ 置信阈值（0–1，留空 = 配置文件的值）": "FAQ confidence threshold (0–1; empty = the config file's)",
    "客服响应时限（秒）": "Agent response limit (seconds)", "无消息多久自动结束会话（分钟）": "Close a silent conversation after (minutes)",
    "答不上来时的回复": "Reply when the bot cannot answer", "转人工提示（{agent} = 客服名）": "Handoff notice ({agent} = agent's name)",
    "排队提示（{position} = 排队位置）": "Queue notice ({position} = place in the queue)",
    "非服务时间提示（{hours} = 服务时间）": "Closed notice ({hours} = business hours)", "会话结束语": "Closing message",
    "服务时间": "Business hours",
    "最接近的 FAQ：#%(id)s（得分 %(score)s）": "Nearest FAQ: #%(id)s (score %(score)s)",
    "机器人没有把握，请自己选择": "The bot is not confident: pick one yourself", "选择分类…": "Choose a category…",
    "选择 FAQ…": "Choose an FAQ…", "忽略这一组": "Dismiss this group", "请选择分类": "Choose a category",
})


EN.update({  # the agents' workbench (issue 22)
    "工作台": "Workbench",
    "管理员视图：可查看全部会话，回复需以客服身份登录": "Admin view: every conversation, read-only; replies need an agent's sign-in",
    "我的会话": "My conversations",
    "公海客户": "Public pool customers",
    "回复": "Reply",
    "发送": "Send",
    "接入": "Take",
    "转接给": "Transfer to",
    "转接备注": "Transfer note",
    "搜索快捷短语": "Search quick phrases", "轮询": "Polling", "实时": "Live", "实时：事件流推送；轮询：每 2 秒刷新":
    "Live: pushed by the event stream; Polling: refreshed every 2 s",
    "存为快捷短语": "Save as quick phrase",
    "至少填写一个问法（每行一个）": "Enter at least one phrasing (one per line)",
    "问法太长（最多 %(n)s 字）：%(text)s": "Phrasing too long (at most %(n)s characters): %(text)s",
    "问法「%(phrasing)s」与 FAQ #%(other)s 的问法「%(other_phrasing)s」相近（得分 %(score)s，达到回答阈值），顾客可能得到那条的答案。那条答案：%(other_answer)s；本条答案：%(answer)s":
        "Phrasing \u201c%(phrasing)s\u201d is close to FAQ #%(other)s's phrasing \u201c%(other_phrasing)s\u201d "
        "(score %(score)s, at or above the answering threshold): a customer may get that FAQ's answer. "
        "Its answer: %(other_answer)s; this answer: %(answer)s",
    "问法（每行一个）": "Phrasings (one per line)",
    "分类名": "Category name",
    "排序": "Order",
    "排序（小的在前）": "Order (smaller first)",
    "分类名不能为空": "The category name is required",
    "已有同名分类：%(name)s": "A category with this name exists: %(name)s",
    "分类「%(name)s」还有 %(n)s 条 FAQ，先把它们移到别的分类再删除":
        "Category \u201c%(name)s\u201d still has %(n)s FAQs: move them to another category before deleting it",
    "分类管理": "Categories",
    "%(n)s 条 FAQ 都达到回答阈值：顾客换个说法可能得到另一条的答案，请合并或改写问法。":
        "%(n)s FAQs reach the answering threshold: a customer wording it differently may get another's answer; "
        "merge them or reword the phrasings.",
    "管理分类": "Manage categories",
    # the dashboard's date range in shop terms (admin/dashboard_period.py)
    "店铺概览": "Shop overview", "从": "From", "到": "To", "查看": "Show",
    "按店铺时区的自然日，含首尾两天": "Shop-local days, both ends included",
    "范围内发过消息的顾客（去重）": "Distinct customers who wrote in the range", "咨询人数": "Customers",
    "个会话": "conversations", "已结束的会话中，没有转人工就结束的比例": "Closed conversations that ended without a human",
    "自助解决率": "Self-service rate", "会话中进入排队或人工接待的比例": "Conversations that reached the queue or an agent",
    "转人工率": "Handoff rate", "从转人工到客服第一次回复": "From the handoff to the agent's first reply",
    "首次响应（中位数）": "First response (median)", "咨询时段分布": "Hour of day",
    "顾客消息数，按店铺时间的小时": "Customer messages per shop-local hour",
    "日期格式应为 年-月-日，例如 2026-12-01": "Dates are year-month-day, e.g. 2026-12-01",
    "结束日期早于开始日期": "The end date is before the start date",
    "有顾客等待超过响应时限": "Customers have waited past the response limit", "查看全部": "See all",
    # agent presence (admin/presence_view.py)
    "刚刚": "just now", "%(n)s 分钟前": "%(n)s min ago", "%(n)s 小时前": "%(n)s h ago", "%(n)s 天前": "%(n)s days ago",
    "从未活动": "never seen", "在线但无活动": "online but quiet", "最近活动": "Last seen", "接待中/上限": "Load",
    "客服最近一次发消息、用命令或打开工作台的时间；在线但超过设定分钟数无活动时标 ⚠":
        "When the agent last sent a message, used a command or had the workbench open; ⚠ when marked online "
        "but quiet longer than the setting",
    "在线客服多久无活动标为无活动（分钟，0 = 不标）": "Mark an online agent quiet after (minutes, 0 = never)", "日期范围最长 %(n)s 天": "A range is at most %(n)s days",
})

def extract() -> list[str]:
    """Every msgid the panel's Python and templates use, in first-seen order."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir

    root = Path(__file__).resolve().parent.parent
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    seen: dict[str, None] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(str(root), method_map, keywords=keywords):
        if isinstance(message, str) and message:
            seen.setdefault(message, None)
    return list(seen)


def catalog() -> Any:
    from babel.messages.catalog import Catalog

    result = Catalog(locale="en", project="kefu")
    for msgid in extract():
        result.add(msgid, EN.get(msgid, ""))
    return result


def main() -> None:
    """Regenerate en/LC_MESSAGES/messages.po and .mo; list the strings without English."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import write_po

    built = catalog()
    out = Path(__file__).resolve().parent / "en" / "LC_MESSAGES"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "messages.po", "wb") as fh:
        write_po(fh, built, omit_header=True, no_location=True, sort_output=True)
    with open(out / "messages.mo", "wb") as fh:
        write_mo(fh, built)
    missing = [m.id for m in built if m.id and not m.string]
    if missing:
        print("no English yet for:", *missing, sep="\n  ")


if __name__ == "__main__":
    main()
