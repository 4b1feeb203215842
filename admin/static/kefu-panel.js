/* Flask-Admin's clicks without inline handlers, for the panel's Content-Security-Policy.
   admin/csp.py turns its templates' onclick="…" into data attributes; this binds them:
   data-kefu-action   the bulk action menu (modelActions.execute),
   data-kefu-confirm  the delete button asks first,
   data-kefu-add-inline  "add a phrasing" and other inline rows (faForm.addInlineField),
   data-kefu-prevent  a menu entry that only opens something.
   A javascript:void(0) link never navigates (the policy would refuse it, and say so). */
(function () {
  "use strict";
  var BOUND = "[data-kefu-action],[data-kefu-confirm],[data-kefu-add-inline],[data-kefu-prevent],a[href^='javascript:']";
  // capturing, on window: before any handler below could stop the click on its way
  window.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest(BOUND) : null;
    if (!el) { return; }
    if (el.hasAttribute("data-kefu-confirm")) {
      if (!window.confirm(el.getAttribute("data-kefu-confirm"))) { ev.preventDefault(); }
      return;
    }
    ev.preventDefault();
    if (el.hasAttribute("data-kefu-action")) {
      window.modelActions.execute(el.getAttribute("data-kefu-action"));
    } else if (el.hasAttribute("data-kefu-add-inline")) {
      window.faForm.addInlineField(el, el.getAttribute("data-kefu-add-inline"));
    }
  }, true);
})();
