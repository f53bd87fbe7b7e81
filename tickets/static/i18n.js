// Labels: Chinese first, English fallback for anything not translated.
"use strict";
const LABELS = {
  en: {
    title: "GridWatch watch floor", offline: "offline", live: "live", logout: "Log out",
    token: "Access token", sign_in: "Sign in", queue: "Live queue", map: "District map",
    severity: "Severity", category: "Category", grid: "Grid", state: "State", due: "Due",
    assignee: "Assignee", ticket: "Ticket", audit: "Audit trail", calm: "calm",
    risk: "risk (pre-alert)", open_tickets: "open tickets", acknowledge: "Acknowledge",
    dispatch: "Dispatch", resolve: "Resolve", false_alarm: "False alarm",
    kpi_open: "Open", kpi_pre_alerts: "Pre-alerts", kpi_breaches: "SLA breaches",
    kpi_preempt: "Pre-emption rate", kpi_lead: "Median lead (min)", kpi_mtta: "MTTA (min)",
    kpi_mttr: "MTTR (min)", kpi_precision: "Precision", why: "Why now", agency: "Agency",
    bad_token: "Token not accepted", empty: "No active tickets",
    pre_alert: "pre-alert", open: "open", acknowledged: "acknowledged", dispatched: "dispatched",
    resolved: "resolved", auto_resolved: "auto-resolved", retracted: "retracted",
    waterlogging: "waterlogging", bike_overflow: "bike overflow", street_vendor: "street vendor",
    exposed_garbage: "exposed garbage", road_occupation: "road occupation", crowding: "crowding",
    near_misses: "Near misses (why not raised)", outcomes: "Outcome feedback (precision)", by: "By", key: "Key", real: "real",
    rule: "rule", model: "model", sensor: "sensor", versions: "Versions",
    complaints: "Complaints", pre_empted: "pre-empted", lead: "lead (min)",
    device_fault: "device fault", info: "info", minor: "minor", major: "major", critical: "critical",
    storm_mode: "Storm mode", storm_since: "since", storm_peak: "peak share of grids in heavy rain",
    rolled_up: "queue rolled up per grid", oldest: "oldest", breached: "breached", tickets: "tickets",
  },
  zh: {
    title: "网格值守台", offline: "离线", live: "实时", logout: "退出", token: "访问令牌",
    sign_in: "登录", queue: "实时工单队列", map: "辖区网格图", severity: "等级", category: "类别",
    grid: "网格", state: "状态", due: "时限", assignee: "责任人", ticket: "工单", audit: "处置记录",
    calm: "正常", risk: "风险（预警）", open_tickets: "有在办工单", acknowledge: "签收",
    dispatch: "派遣", resolve: "办结", false_alarm: "误报", kpi_open: "在办",
    kpi_pre_alerts: "预警", kpi_breaches: "超时", kpi_preempt: "未诉先办率",
    kpi_lead: "提前量中位数(分)", kpi_mtta: "平均签收(分)", kpi_mttr: "平均办结(分)",
    kpi_precision: "准确率", why: "触发原因", agency: "责任部门", bad_token: "令牌无效",
    empty: "暂无在办工单", pre_alert: "预警", open: "待签收", acknowledged: "已签收",
    dispatched: "已派遣", resolved: "已办结", auto_resolved: "自动消警", retracted: "预警撤销",
    waterlogging: "积水", bike_overflow: "单车堆积", street_vendor: "占道经营",
    exposed_garbage: "暴露垃圾", road_occupation: "道路占用", crowding: "人员聚集",
    near_misses: "未立案记录（为何未派单）", outcomes: "处置反馈（准确率）", by: "维度", key: "名称", real: "属实", rule: "规则",
    model: "模型", sensor: "传感器", versions: "版本", complaints: "市民诉求",
    pre_empted: "未诉先办", lead: "提前量(分)",
    device_fault: "设备故障", info: "提示", minor: "一般", major: "较重", critical: "严重",
    storm_mode: "暴雨模式", storm_since: "开始于", storm_peak: "强降雨网格占比峰值",
    rolled_up: "工单按网格汇总", oldest: "最早", breached: "超时", tickets: "件",
  },
};
// Chinese by default (the watch floor works in Chinese); English only when chosen.
let LANG = localStorage.getItem("gw-lang") === "en" ? "en" : "zh";
function t(key) {
  return (LABELS[LANG] && LABELS[LANG][key]) || LABELS.en[key] || key;
}
function applyLabels(root) {
  (root || document).querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
}
