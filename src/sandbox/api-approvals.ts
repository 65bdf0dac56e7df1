// REST routes for approvals: a merge request's approval state, approve, unapprove, and the
// project's approval settings.
import { type ApiDeps, authed, mergeRequestOf, projectOf } from './api-common.js';
import { approve, canApprove, setApprovalSettings, unapprove } from './core-merge-requests.js';
import { bool, type Router, str } from './http.js';
import { AccessLevel, type MergeRequest, type Project, type User } from './state.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  const approvalsEntity = (p: Project, mr: MergeRequest, viewer: User | null) => ({
    ...entities.mergeRequestBasics(p, mr),
    merge_status: 'can_be_merged',
    approved: true,
    approvals_required: 0,
    approvals_left: 0,
    require_password_to_approve: false,
    approved_by: mr.approvals.map((a) => ({ user: entities.userById(a.userId), approved_at: a.approvedAt })),
    suggested_approvers: [],
    approvers: [],
    approver_groups: [],
    user_has_approved: !!viewer && mr.approvals.some((a) => a.userId === viewer.id),
    user_can_approve: !!viewer && canApprove(core, viewer, p, mr),
    approval_rules_left: [],
    has_approval_rules: false,
    merge_request_approvers_available: false,
    multiple_approval_rules_available: false,
    invalid_approvers_rules: [],
  });

  // Project approval settings (GitLab Premium's API; here for merge_requests_author_approval).
  router.on('POST', '/projects/:id/approvals', (ctx) => {
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    setApprovalSettings(core, ctx.user, p, bool(ctx, 'merge_requests_author_approval'));
    return { merge_requests_author_approval: !!p.authorApproval, reset_approvals_on_push: false };
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/approvals', (ctx) => {
    const { p, mr } = mergeRequestOf(core, ctx);
    return approvalsEntity(p, mr, ctx.user);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/approve', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = mergeRequestOf(core, ctx);
    approve(core, user, p, mr, str(ctx, 'sha'));
    ctx.res.statusCode = 201;
    return approvalsEntity(p, mr, user);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/unapprove', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = mergeRequestOf(core, ctx);
    unapprove(core, user, p, mr);
    ctx.res.statusCode = 201;
    return approvalsEntity(p, mr, user);
  });
}
