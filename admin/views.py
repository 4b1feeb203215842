"""The panel's menu: every view, grouped the way a shop operator looks for them.

Why one registry: each capability (FAQs, CRM, campaigns, ...) lives in its own module and
is added here; roles are declared on the view classes (`admin_only`), not here. A link that
is not a view is a `SecureMenuLink`, hidden from logged-out visitors like the views.
"""

from __future__ import annotations

from flask_admin import Admin
from flask_babel import lazy_gettext as _l

from admin.auth import SecureMenuLink
from admin.campaign_views import CampaignView, DeliveryView
from admin.conversation_views import ConversationView, MessageView
from admin.crm_views import (
    AgentView, CouponView, CustomerView, GroupMemberView, GroupView, IssuedCouponView, OrderView, SegmentView, TagView,
)
from admin.faq_views import FaqCategoryView, FaqToolsView, FaqView, SynonymView
from admin.ops_views import AdminUserView, OutboxFailureView, UnansweredView
from admin.settings_view import ChannelsView, SettingsView
from bot.core.config import Config
from bot.core.models import AdminUser, Agent, Campaign, Conversation, Coupon, Customer, CustomerGroup, Delivery, Faq, FaqCategory, GroupMember, IssuedCoupon, Message, Order, Outbox, Segment, Synonym, Tag, UnansweredQuestion


def register_views(admin: Admin, config: Config) -> None:
    kb, service, crm, marketing, system = _l("知识库"), _l("客服"), _l("客户"), _l("营销"), _l("系统")
    admin.add_view(FaqView(Faq, name=_l("FAQ"), category=kb, endpoint="faq"))
    admin.add_view(FaqToolsView(name=_l("试一试 / 分类 / 导入导出"), category=kb, endpoint="faqtools", url="/admin/faq-tools"))
    admin.add_view(FaqCategoryView(FaqCategory, name=_l("分类管理"), category=kb, endpoint="faqcategory"))
    admin.add_view(SynonymView(Synonym, name=_l("同义词"), category=kb, endpoint="synonym"))
    admin.add_view(UnansweredView(UnansweredQuestion, name=_l("未解决问题"), category=kb, endpoint="unanswered"))
    admin.add_link(SecureMenuLink(name=_l("低评分 FAQ"), category=kb, endpoint="faq.low_rated_view"))
    admin.add_view(ConversationView(Conversation, name=_l("会话"), category=service, endpoint="conversation"))
    admin.add_view(MessageView(Message, name=_l("消息"), category=service, endpoint="message"))
    admin.add_view(AgentView(Agent, name=_l("客服人员"), category=service, endpoint="agent"))
    admin.add_view(CustomerView(Customer, name=_l("顾客"), category=crm, endpoint="customer"))
    admin.add_view(TagView(Tag, name=_l("标签"), category=crm, endpoint="tag"))
    admin.add_view(GroupView(CustomerGroup, name=_l("群组"), category=crm, endpoint="group"))
    admin.add_view(GroupMemberView(GroupMember, name=_l("群成员"), category=crm, endpoint="groupmember"))
    admin.add_view(SegmentView(Segment, name=_l("人群"), category=crm, endpoint="segment"))
    admin.add_view(OrderView(Order, name=_l("订单"), category=crm, endpoint="order"))
    admin.add_view(CampaignView(Campaign, name=_l("群发活动"), category=marketing, endpoint="campaign"))
    admin.add_view(DeliveryView(Delivery, name=_l("发送明细"), category=marketing, endpoint="delivery"))
    admin.add_view(CouponView(Coupon, name=_l("优惠券"), category=marketing, endpoint="coupon"))
    admin.add_view(IssuedCouponView(IssuedCoupon, name=_l("已发优惠券"), category=marketing, endpoint="issuedcoupon"))
    admin.add_view(OutboxFailureView(Outbox, name=_l("发送失败"), category=system, endpoint="outbox"))
    admin.add_view(SettingsView(name=_l("设置"), category=system, endpoint="settings", url="/admin/settings"))
    admin.add_view(ChannelsView(name=_l("渠道"), category=system, endpoint="channels", url="/admin/channels"))
    admin.add_view(AdminUserView(AdminUser, name=_l("后台用户"), category=system, endpoint="adminuser"))
