/* test_family.c — the API family presets: names, the cacheable-path audit
 * (every POST endpoint of the OpenAI and Anthropic APIs against the default
 * list: only inference endpoints may match), credential and key headers,
 * credential query parameters, streaming, framing, terminal events on real
 * wire samples of each family (whole, cut, failed), and token usage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "eventstream.h"
#include "family.h"
#include "key.h"
#include "sse.h"

#define S(x) x, strlen(x)

static const enum pc_family_id all[] = {PC_FAMILY_DEFAULT, PC_FAMILY_OPENAI, PC_FAMILY_ANTHROPIC,
                                        PC_FAMILY_GEMINI,  PC_FAMILY_AZURE,  PC_FAMILY_OLLAMA,
                                        PC_FAMILY_TGI,     PC_FAMILY_LLAMACPP, PC_FAMILY_BEDROCK};
#define N_ALL (sizeof all / sizeof *all)

Test(family, names_round_trip) {
  static const char *const names[] = {"default", "openai", "anthropic", "gemini", "azure",
                                      "ollama",  "tgi",    "llamacpp",  "bedrock"};
  for (size_t i = 0; i < N_ALL; i++) {
    enum pc_family_id f = PC_FAMILY_N;
    cr_expect_str_eq(pc_family_name(all[i]), names[i]);
    cr_expect_eq(pc_family_parse(names[i], &f), 0);
    cr_expect_eq(f, all[i]);
  }
  enum pc_family_id f = PC_FAMILY_OLLAMA;
  cr_expect_eq(pc_family_parse("Bedrock", &f), 0);
  cr_expect_eq(f, PC_FAMILY_BEDROCK);
  f = PC_FAMILY_OLLAMA;
  cr_expect_eq(pc_family_parse("vertex", &f), PC_EINVAL);
  cr_expect_eq(pc_family_parse("", &f), PC_EINVAL);
  cr_expect_eq(pc_family_parse("openai ", &f), PC_EINVAL);
  cr_expect_eq(pc_family_parse(NULL, &f), PC_EINVAL);
  cr_expect_eq(f, PC_FAMILY_OLLAMA, "untouched on error");
  cr_expect_str_eq(pc_family_name(PC_FAMILY_N), "default");
}

/* ---- the cacheable-path audit ---- */

struct path_case {
  const char *path;
  int cacheable;
};

/* Every POST path of the official SDKs installed by tests/e2e/package-lock.json
 * (openai 6.49.0, @anthropic-ai/sdk 1.14.0): 113 OpenAI + 117 Anthropic paths.
 * Extracted from their compiled resources, every `_client.post(<path>` and
 * every `_client.getAPIList(<path>, Page, {..., method: 'post'})`, with
 *
 *   cd tests/e2e/node_modules && node -e '
 *   const fs = require("fs"), path = require("path");
 *   const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
 *     e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith(".mjs") ? [path.join(d, e.name)] : []);
 *   for (const [dir, base] of [["openai/resources", "/v1"], ["@anthropic-ai/sdk/resources", ""]]) {
 *     const out = new Set();
 *     for (const f of walk(dir)) {
 *       const src = fs.readFileSync(f, "utf8");
 *       for (const m of src.matchAll(/_client\.(post|getAPIList)\(\s*(?:path\s*)?[`\x27"]([^`\x27"]*)/g)) {
 *         if (m[1] === "getAPIList" && !/method:\s*.post./.test(src.slice(m.index, src.indexOf(";", m.index)))) continue;
 *         out.add(base + m[2].replace(/\?.*$/, ""));
 *       }
 *     }
 *     console.log([...out].sort().join("\n"));
 *   }'
 *
 * (OpenAI's base URL ends in /v1; Anthropic's paths carry it; queries such as
 * ?beta=true are dropped), then each `${name}` replaced by a sample id
 * (`${threadID}` → thread_abc123). Expected: cacheable exactly when the
 * endpoint is inference that answers from the request alone (SPEC §3):
 * chat/completions, completions, embeddings, moderations, responses,
 * Anthropic's messages. Not the pure-but-cheap counters (responses/
 * input_tokens, messages/count_tokens), nor anything that creates, changes
 * or cancels a resource (threads/{id}/messages, messages/batches,
 * chat/completions/{id}, responses/compact, ...). */
static const struct path_case sdk_posts[] = {
    /* openai */
    {"/v1/assistants", 0},
    {"/v1/assistants/assistant_abc123", 0},
    {"/v1/audio/speech", 0},
    {"/v1/audio/transcriptions", 0},
    {"/v1/audio/translations", 0},
    {"/v1/batches", 0},
    {"/v1/batches/batch_abc123/cancel", 0},
    {"/v1/chat/completions", 1},
    {"/v1/chat/completions/completion_abc123", 0},
    {"/v1/chatkit/sessions", 0},
    {"/v1/chatkit/sessions/session_abc123/cancel", 0},
    {"/v1/completions", 1},
    {"/v1/containers", 0},
    {"/v1/containers/container_abc123/files", 0},
    {"/v1/conversations", 0},
    {"/v1/conversations/conversation_abc123", 0},
    {"/v1/conversations/conversation_abc123/items", 0},
    {"/v1/embeddings", 1},
    {"/v1/evals", 0},
    {"/v1/evals/eval_abc123", 0},
    {"/v1/evals/eval_abc123/runs", 0},
    {"/v1/evals/eval_abc123/runs/run_abc123", 0},
    {"/v1/files", 0},
    {"/v1/fine_tuning/alpha/graders/run", 0},
    {"/v1/fine_tuning/alpha/graders/validate", 0},
    {"/v1/fine_tuning/checkpoints/finetunedmodelcheckpoint_abc123/permissions", 0},
    {"/v1/fine_tuning/jobs", 0},
    {"/v1/fine_tuning/jobs/finetuningjob_abc123/cancel", 0},
    {"/v1/fine_tuning/jobs/finetuningjob_abc123/pause", 0},
    {"/v1/fine_tuning/jobs/finetuningjob_abc123/resume", 0},
    {"/v1/images/edits", 0},
    {"/v1/images/generations", 0},
    {"/v1/images/variations", 0},
    {"/v1/moderations", 1},
    {"/v1/organization/admin_api_keys", 0},
    {"/v1/organization/certificates", 0},
    {"/v1/organization/certificates/activate", 0},
    {"/v1/organization/certificates/deactivate", 0},
    {"/v1/organization/certificates/certificate_abc123", 0},
    {"/v1/organization/data_retention", 0},
    {"/v1/organization/groups", 0},
    {"/v1/organization/groups/group_abc123", 0},
    {"/v1/organization/groups/group_abc123/roles", 0},
    {"/v1/organization/groups/group_abc123/users", 0},
    {"/v1/organization/invites", 0},
    {"/v1/organization/projects", 0},
    {"/v1/organization/projects/project_abc123", 0},
    {"/v1/organization/projects/project_abc123/archive", 0},
    {"/v1/organization/projects/project_abc123/certificates/activate", 0},
    {"/v1/organization/projects/project_abc123/certificates/deactivate", 0},
    {"/v1/organization/projects/project_abc123/data_retention", 0},
    {"/v1/organization/projects/project_abc123/groups", 0},
    {"/v1/organization/projects/project_abc123/hosted_tool_permissions", 0},
    {"/v1/organization/projects/project_abc123/model_permissions", 0},
    {"/v1/organization/projects/project_abc123/service_accounts", 0},
    {"/v1/organization/projects/project_abc123/spend_alerts", 0},
    {"/v1/organization/projects/project_abc123/spend_limit", 0},
    {"/v1/organization/projects/project_abc123/users", 0},
    {"/v1/organization/projects/project_abc123/rate_limits/ratelimit_abc123", 0},
    {"/v1/organization/projects/project_abc123/service_accounts/serviceaccount_abc123", 0},
    {"/v1/organization/projects/project_abc123/service_accounts/serviceaccount_abc123/api_keys", 0},
    {"/v1/organization/projects/project_abc123/spend_alerts/alert_abc123", 0},
    {"/v1/organization/projects/project_abc123/users/user_abc123", 0},
    {"/v1/organization/roles", 0},
    {"/v1/organization/roles/role_abc123", 0},
    {"/v1/organization/spend_alerts", 0},
    {"/v1/organization/spend_alerts/alert_abc123", 0},
    {"/v1/organization/spend_limit", 0},
    {"/v1/organization/users/user_abc123", 0},
    {"/v1/organization/users/user_abc123/roles", 0},
    {"/v1/projects/project_abc123/roles", 0},
    {"/v1/projects/project_abc123/groups/group_abc123/roles", 0},
    {"/v1/projects/project_abc123/roles/role_abc123", 0},
    {"/v1/projects/project_abc123/users/user_abc123/roles", 0},
    {"/v1/realtime/calls/call_abc123/accept", 0},
    {"/v1/realtime/calls/call_abc123/hangup", 0},
    {"/v1/realtime/calls/call_abc123/refer", 0},
    {"/v1/realtime/calls/call_abc123/reject", 0},
    {"/v1/realtime/client_secrets", 0},
    {"/v1/realtime/sessions", 0},
    {"/v1/realtime/transcription_sessions", 0},
    {"/v1/responses", 1},
    {"/v1/responses/compact", 0},
    {"/v1/responses/input_tokens", 0},
    {"/v1/responses/response_abc123/cancel", 0},
    {"/v1/skills", 0},
    {"/v1/skills/skill_abc123", 0},
    {"/v1/skills/skill_abc123/versions", 0},
    {"/v1/threads", 0},
    {"/v1/threads/runs", 0},
    {"/v1/threads/thread_abc123", 0},
    {"/v1/threads/thread_abc123/messages", 0},
    {"/v1/threads/thread_abc123/runs", 0},
    {"/v1/threads/thread_abc123/messages/message_abc123", 0},
    {"/v1/threads/thread_abc123/runs/run_abc123", 0},
    {"/v1/threads/thread_abc123/runs/run_abc123/cancel", 0},
    {"/v1/threads/thread_abc123/runs/run_abc123/submit_tool_outputs", 0},
    {"/v1/uploads", 0},
    {"/v1/uploads/upload_abc123/cancel", 0},
    {"/v1/uploads/upload_abc123/complete", 0},
    {"/v1/uploads/upload_abc123/parts", 0},
    {"/v1/vector_stores", 0},
    {"/v1/vector_stores/vectorstore_abc123", 0},
    {"/v1/vector_stores/vectorstore_abc123/file_batches", 0},
    {"/v1/vector_stores/vectorstore_abc123/files", 0},
    {"/v1/vector_stores/vectorstore_abc123/search", 0},
    {"/v1/vector_stores/vector_store_abc123/file_batches/batch_abc123/cancel", 0},
    {"/v1/vector_stores/vector_store_abc123/files/file_abc123", 0},
    {"/v1/videos", 0},
    {"/v1/videos/characters", 0},
    {"/v1/videos/edits", 0},
    {"/v1/videos/extensions", 0},
    {"/v1/videos/video_abc123/remix", 0},
    /* anthropic */
    {"/v1/agents", 0},
    {"/v1/agents/agent_abc123", 0},
    {"/v1/agents/agent_abc123/archive", 0},
    {"/v1/compliance/review/cases/case_abc123/respond", 0},
    {"/v1/deployments", 0},
    {"/v1/deployments/deployment_abc123", 0},
    {"/v1/deployments/deployment_abc123/archive", 0},
    {"/v1/deployments/deployment_abc123/pause", 0},
    {"/v1/deployments/deployment_abc123/run", 0},
    {"/v1/deployments/deployment_abc123/unpause", 0},
    {"/v1/dreams", 0},
    {"/v1/dreams/dream_abc123/archive", 0},
    {"/v1/dreams/dream_abc123/cancel", 0},
    {"/v1/environments", 0},
    {"/v1/environments/environment_abc123", 0},
    {"/v1/environments/environment_abc123/archive", 0},
    {"/v1/environments/environment_abc123/work/work_abc123", 0},
    {"/v1/environments/environment_abc123/work/work_abc123/ack", 0},
    {"/v1/environments/environment_abc123/work/work_abc123/heartbeat", 0},
    {"/v1/environments/environment_abc123/work/work_abc123/stop", 0},
    {"/v1/files", 0},
    {"/v1/memory_stores", 0},
    {"/v1/memory_stores/memorystore_abc123", 0},
    {"/v1/memory_stores/memorystore_abc123/archive", 0},
    {"/v1/memory_stores/memorystore_abc123/memories", 0},
    {"/v1/memory_stores/memory_store_abc123/memories/memory_abc123", 0},
    {"/v1/memory_stores/memory_store_abc123/memory_versions/memoryversion_abc123/redact", 0},
    {"/v1/messages", 1},
    {"/v1/messages/batches", 0},
    {"/v1/messages/batches/messagebatch_abc123/cancel", 0},
    {"/v1/messages/count_tokens", 0},
    {"/v1/organizations/api_keys/apikey_abc123", 0},
    {"/v1/organizations/claude_code/managed_settings/configuration", 0},
    {"/v1/organizations/claude_code/managed_settings/rbac_group_default", 0},
    {"/v1/organizations/claude_code/managed_settings/rbac_groups/rbacgroup_abc123", 0},
    {"/v1/organizations/claude_tag/bundles/bundle_abc123", 0},
    {"/v1/organizations/claude_tag/bundles/bundle_abc123/targets", 0},
    {"/v1/organizations/claude_tag/slack_channels", 0},
    {"/v1/organizations/claude_tag/slack_channels/_abc123", 0},
    {"/v1/organizations/claude_tag/slack_workspaces/_abc123", 0},
    {"/v1/organizations/compliance_settings", 0},
    {"/v1/organizations/external_keys", 0},
    {"/v1/organizations/external_keys/externalkey_abc123", 0},
    {"/v1/organizations/external_keys/externalkey_abc123/validate", 0},
    {"/v1/organizations/external_storage", 0},
    {"/v1/organizations/external_storage/externalstorage_abc123", 0},
    {"/v1/organizations/external_storage/externalstorage_abc123/activate", 0},
    {"/v1/organizations/federation_issuers", 0},
    {"/v1/organizations/federation_issuers/federationissuer_abc123", 0},
    {"/v1/organizations/federation_issuers/federationissuer_abc123/archive", 0},
    {"/v1/organizations/federation_rules", 0},
    {"/v1/organizations/federation_rules/federationrule_abc123", 0},
    {"/v1/organizations/federation_rules/federationrule_abc123/archive", 0},
    {"/v1/organizations/federation_rules/federationrule_abc123/workspaces", 0},
    {"/v1/organizations/invites", 0},
    {"/v1/organizations/plugin_marketplaces/validate_archive", 0},
    {"/v1/organizations/plugin_marketplaces/validate_repository", 0},
    {"/v1/organizations/plugin_marketplaces/marketplace_abc123", 0},
    {"/v1/organizations/plugins", 0},
    {"/v1/organizations/plugins/plugin_abc123", 0},
    {"/v1/organizations/plugins/plugin_abc123/versions", 0},
    {"/v1/organizations/plugins/plugin_abc123/installation_settings/target_abc123", 0},
    {"/v1/organizations/providers/google/projects/projectnumber_abc123/data_controls", 0},
    {"/v1/organizations/rbac_groups", 0},
    {"/v1/organizations/rbac_groups/rbacgroup_abc123", 0},
    {"/v1/organizations/rbac_groups/rbacgroup_abc123/members", 0},
    {"/v1/organizations/service_accounts", 0},
    {"/v1/organizations/service_accounts/serviceaccount_abc123", 0},
    {"/v1/organizations/service_accounts/serviceaccount_abc123/archive", 0},
    {"/v1/organizations/service_accounts/serviceaccount_abc123/workspaces", 0},
    {"/v1/organizations/spend_limit_increase_requests/spendlimitincreaserequest_abc123/approve", 0},
    {"/v1/organizations/spend_limit_increase_requests/spendlimitincreaserequest_abc123/deny", 0},
    {"/v1/organizations/spend_limits", 0},
    {"/v1/organizations/telemetry_destinations", 0},
    {"/v1/organizations/telemetry_destinations/destination_abc123", 0},
    {"/v1/organizations/telemetry_destinations/destination_abc123/test", 0},
    {"/v1/organizations/telemetry_destinations/destination_abc123/workspaces/workspace_abc123", 0},
    {"/v1/organizations/users/user_abc123", 0},
    {"/v1/organizations/users/user_abc123/sign_out", 0},
    {"/v1/organizations/webhooks", 0},
    {"/v1/organizations/webhooks/webhookendpoint_abc123", 0},
    {"/v1/organizations/webhooks/webhookendpoint_abc123/regenerate_signing_secret", 0},
    {"/v1/organizations/workspaces", 0},
    {"/v1/organizations/workspaces/workspace_abc123", 0},
    {"/v1/organizations/workspaces/workspace_abc123/archive", 0},
    {"/v1/organizations/workspaces/workspace_abc123/members", 0},
    {"/v1/organizations/workspaces/workspace_abc123/service_accounts", 0},
    {"/v1/organizations/workspaces/workspace_abc123/members/user_abc123", 0},
    {"/v1/organizations/workspaces/workspace_abc123/rate_limits/ratelimit_abc123", 0},
    {"/v1/organizations/workspaces/workspace_abc123/service_accounts/serviceaccount_abc123", 0},
    {"/v1/sessions", 0},
    {"/v1/sessions/session_abc123", 0},
    {"/v1/sessions/session_abc123/archive", 0},
    {"/v1/sessions/session_abc123/events", 0},
    {"/v1/sessions/session_abc123/resources", 0},
    {"/v1/sessions/session_abc123/resources/resource_abc123", 0},
    {"/v1/sessions/session_abc123/threads/thread_abc123/archive", 0},
    {"/v1/skills", 0},
    {"/v1/skills/skill_abc123/versions", 0},
    {"/v1/tunnels", 0},
    {"/v1/tunnels/tunnel_abc123/archive", 0},
    {"/v1/tunnels/tunnel_abc123/certificates", 0},
    {"/v1/tunnels/tunnel_abc123/reveal_token", 0},
    {"/v1/tunnels/tunnel_abc123/rotate_token", 0},
    {"/v1/tunnels/tunnel_abc123/certificates/certificate_abc123/archive", 0},
    {"/v1/user_profiles", 0},
    {"/v1/user_profiles/userprofile_abc123", 0},
    {"/v1/user_profiles/userprofile_abc123/action_urls", 0},
    {"/v1/user_profiles/userprofile_abc123/enrollment_url", 0},
    {"/v1/user_profiles/userprofile_abc123/providers/google/data_controls", 0},
    {"/v1/vaults", 0},
    {"/v1/vaults/vault_abc123", 0},
    {"/v1/vaults/vault_abc123/archive", 0},
    {"/v1/vaults/vault_abc123/credentials", 0},
    {"/v1/vaults/vault_abc123/credentials/credential_abc123", 0},
    {"/v1/vaults/vault_abc123/credentials/credential_abc123/archive", 0},
    {"/v1/vaults/vault_abc123/credentials/credential_abc123/mcp_oauth_validate", 0},
};

Test(family, audit_every_sdk_post_path_against_the_default_list) {
  size_t n = sizeof sdk_posts / sizeof *sdk_posts, cacheable = 0;
  cr_expect_eq(n, 230);
  for (size_t i = 0; i < n; i++) {
    const struct path_case *c = &sdk_posts[i];
    cr_expect_eq(pc_family_cacheable(PC_FAMILY_DEFAULT, S(c->path)), c->cacheable, "%s: expected %s", c->path,
                 c->cacheable ? "cacheable" : "BYPASS");
    cacheable += (size_t)c->cacheable;
  }
  cr_expect_eq(cacheable, 6);
}

Test(family, no_family_caches_a_state_changing_sdk_path) {
  for (size_t f = 0; f < N_ALL; f++)
    for (size_t i = 0; i < sizeof sdk_posts / sizeof *sdk_posts; i++)
      if (!sdk_posts[i].cacheable)
        cr_expect_not(pc_family_cacheable(all[f], S(sdk_posts[i].path)), "%s caches %s", pc_family_name(all[f]),
                      sdk_posts[i].path);
}

static void check_paths(enum pc_family_id f, const struct path_case *c, size_t n) {
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(pc_family_cacheable(f, S(c[i].path)), c[i].cacheable, "%s %s: expected %d", pc_family_name(f),
                 c[i].path, c[i].cacheable);
}
#define CHECK_PATHS(f, arr) check_paths(f, arr, sizeof arr / sizeof *arr)

Test(family, default_list_under_prefixes_and_gemini) {
  static const struct path_case c[] = {
      {"/v1/chat/completions", 1},
      {"/chat/completions", 1},                   /* DeepSeek without /v1 */
      {"/openai/v1/chat/completions", 1},         /* Groq */
      {"/api/v1/chat/completions", 1},            /* OpenRouter */
      {"/v1beta/openai/chat/completions", 1},     /* Gemini's OpenAI endpoint */
      {"/anthropic/v1/messages", 1},              /* Anthropic-compatible gateways */
      {"/v1/rerank", 1},
      {"/v1beta/models/gemini-2.0-flash:generateContent", 1},
      {"/v1beta/models/gemini-2.0-flash:streamGenerateContent", 1},
      {"/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent", 1},
      {"/v1beta/models/gemini-2.0-flash:batchGenerateContent", 0}, /* creates a batch job */
      {"/v1beta/models/gemini-2.0-flash:countTokens", 0},
      {"/v1beta/cachedContents", 0},
      {"/v1/threads/thread_abc123/messages", 0}, /* the bug this list fixes */
      {"/v1/messages/batches", 0},
      {"/v1/messages/count_tokens", 0},
      {"/v1/chat/completions/chatcmpl-abc123", 0},
      {"", 0},
      {"/", 0},
  };
  CHECK_PATHS(PC_FAMILY_DEFAULT, c);
}

Test(family, default_list_is_todays_minus_the_thread_messages_glob) {
  const char *const *g = pc_family_cache_paths(PC_FAMILY_DEFAULT);
  static const char *const want[] = {"*/chat/completions", "*/completions", "*/embeddings",      "*/v1/messages",
                                     "*/responses",        "*/moderations", "*/rerank",          "*:generateContent",
                                     "*:streamGenerateContent"};
  size_t n = 0;
  while (g[n]) n++;
  cr_assert_eq(n, sizeof want / sizeof *want);
  for (size_t i = 0; i < n; i++) cr_expect_str_eq(g[i], want[i]);
}

Test(family, other_families_paths) {
  static const struct path_case gemini[] = {
      {"/v1beta/models/gemini-2.5-pro:generateContent", 1},
      {"/v1beta/models/gemini-2.5-pro:streamGenerateContent", 1},
      {"/v1beta/models/text-embedding-004:embedContent", 1},
      {"/v1beta/models/text-embedding-004:batchEmbedContents", 1},
      {"/v1beta/openai/chat/completions", 1},
      {"/v1beta/models/gemini-2.5-pro:batchGenerateContent", 0},
      {"/v1beta/models/gemini-2.5-pro:countTokens", 0},
      {"/v1beta/cachedContents", 0},
      {"/upload/v1beta/files", 0},
      {"/v1beta/tunedModels", 0},
  };
  static const struct path_case azure[] = {
      {"/openai/deployments/gpt-4o/chat/completions", 1},
      {"/openai/deployments/gpt-35-instruct/completions", 1},
      {"/openai/deployments/ada/embeddings", 1},
      {"/openai/v1/chat/completions", 1},
      {"/openai/v1/responses", 1},
      {"/openai/responses", 1},
      {"/apim-prefix/openai/deployments/gpt-4o/chat/completions", 1},
      {"/openai/deployments/dalle/images/generations", 0},
      {"/openai/deployments/whisper/audio/transcriptions", 0},
      {"/openai/threads/thread_abc/messages", 0},
      {"/openai/assistants", 0},
      {"/openai/files", 0},
      {"/openai/batches", 0},
      {"/openai/v1/threads/thread_abc/messages", 0},
  };
  static const struct path_case ollama[] = {
      {"/api/chat", 1},        {"/api/generate", 1}, {"/api/embed", 1},   {"/api/embeddings", 1},
      {"/v1/chat/completions", 1}, {"/v1/embeddings", 1}, {"/api/pull", 0}, {"/api/push", 0},
      {"/api/create", 0},      {"/api/copy", 0},     {"/api/delete", 0},  {"/api/show", 0},
      {"/api/blobs/sha256:abc", 0}, {"/api/tags", 0},
  };
  static const struct path_case tgi[] = {
      {"/generate", 1},  {"/generate_stream", 1}, {"/", 1},          {"", 1}, {"/v1/chat/completions", 1},
      {"/v1/completions", 1}, {"/embed", 1},      {"/rerank", 1},    {"/tokenize", 0}, {"/info", 0},
      {"/metrics", 0},
  };
  static const struct path_case llamacpp[] = {
      {"/completion", 1},  {"/completions", 1},  {"/v1/completions", 1}, {"/chat/completions", 1},
      {"/infill", 1},      {"/embedding", 1},    {"/v1/embeddings", 1},  {"/rerank", 1},
      {"/tokenize", 0},    {"/detokenize", 0},   {"/slots/0", 0},        {"/lora-adapters", 0},
      {"/props", 0},       {"/apply-template", 0},
  };
  static const struct path_case bedrock[] = {
      {"/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke", 1},
      {"/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", 1},
      {"/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/converse-stream", 1},
      {"/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0/invoke", 1},
      {"/model/amazon.titan-text-express-v1/invoke-with-response-stream", 1},
      {"/async-invoke", 0},
      {"/guardrail/gr-abc/version/1/apply", 0},
      {"/model/anthropic.claude-3-haiku-20240307-v1:0/count-tokens", 0},
      {"/model/m/invoke/extra", 0},
  };
  static const struct path_case anthropic[] = {{"/v1/messages", 1}, {"/v1/messages/batches", 0}, {"/v1/complete", 0}};
  static const struct path_case openai[] = {{"/v1/chat/completions", 1}, {"/v1/messages", 0},
                                            {"/v1beta/models/g:generateContent", 0}};
  CHECK_PATHS(PC_FAMILY_GEMINI, gemini);
  CHECK_PATHS(PC_FAMILY_AZURE, azure);
  CHECK_PATHS(PC_FAMILY_OLLAMA, ollama);
  CHECK_PATHS(PC_FAMILY_TGI, tgi);
  CHECK_PATHS(PC_FAMILY_LLAMACPP, llamacpp);
  CHECK_PATHS(PC_FAMILY_BEDROCK, bedrock);
  CHECK_PATHS(PC_FAMILY_ANTHROPIC, anthropic);
  CHECK_PATHS(PC_FAMILY_OPENAI, openai);
}

/* ---- headers and parameters ---- */

static size_t count(const char *const *l) {
  size_t n = 0;
  while (l[n]) n++;
  return n;
}

static int listed(const char *const *l, const char *name) {
  for (; *l; l++)
    if (!strcmp(*l, name)) return 1;
  return 0;
}

Test(family, default_key_headers_are_exactly_todays_five) {
  const char *const *h = pc_family_key_headers(PC_FAMILY_DEFAULT);
  cr_assert_eq(count(h), PC_KEY_N_HEADERS);
  for (int i = 0; i < PC_KEY_N_HEADERS; i++) cr_expect_str_eq(h[i], pc_key_headers[i]);
}

Test(family, credential_and_key_headers) {
  const char *const *d = pc_family_credential_headers(PC_FAMILY_DEFAULT);
  cr_expect_eq(count(d), 4);
  cr_expect(listed(d, "authorization") && listed(d, "x-api-key") && listed(d, "api-key") && listed(d, "x-goog-api-key"));
  cr_expect(listed(pc_family_credential_headers(PC_FAMILY_ANTHROPIC), "x-api-key"));
  cr_expect(listed(pc_family_credential_headers(PC_FAMILY_GEMINI), "x-goog-api-key"));
  cr_expect(listed(pc_family_credential_headers(PC_FAMILY_AZURE), "api-key"));
  cr_expect(listed(pc_family_credential_headers(PC_FAMILY_AZURE), "authorization"), "Entra ID bearer tokens");
  cr_expect(listed(pc_family_credential_headers(PC_FAMILY_BEDROCK), "x-amz-security-token"));
  for (size_t i = 0; i < N_ALL; i++) {
    const char *const *c = pc_family_credential_headers(all[i]), *const *k = pc_family_key_headers(all[i]);
    cr_expect(listed(c, "authorization"), "%s", pc_family_name(all[i]));
    for (; *k; k++) {
      cr_expect_not(listed(c, *k), "%s keys its credential header %s", pc_family_name(all[i]), *k);
      for (const char *p = *k; *p; p++) cr_expect(*p < 'A' || *p > 'Z', "%s is not lower case", *k);
    }
  }
  cr_expect(listed(pc_family_key_headers(PC_FAMILY_ANTHROPIC), "anthropic-version"));
  cr_expect_not(listed(pc_family_key_headers(PC_FAMILY_ANTHROPIC), "openai-beta"));
  cr_expect(listed(pc_family_key_headers(PC_FAMILY_BEDROCK), "x-amzn-bedrock-guardrailidentifier"));
  cr_expect_eq(count(pc_family_key_headers(PC_FAMILY_OLLAMA)), 0);
}

Test(family, credential_query_parameters) {
  static const char *const yes[] = {"key",          "KEY",     "k%65y",   "%4B%45%59", "api_key", "api%5Fkey",
                                    "api-key",      "apikey",  "ApiKey",  "access_token", "subscription-key",
                                    "x-goog-api-key", "token", "sig",     "auth_token"};
  static const char *const no[] = {"model", "api-version", "alt", "beta", "keys", "monkey", "key%", "k%6", "",
                                   "stream", "x-amz-date", "keyword", "k+ey"};
  for (size_t f = 0; f < N_ALL; f++) {
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
      cr_expect(pc_family_is_credential_param(all[f], S(yes[i])), "%s: %s", pc_family_name(all[f]), yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
      cr_expect_not(pc_family_is_credential_param(all[f], S(no[i])), "%s: %s", pc_family_name(all[f]), no[i]);
  }
  cr_expect(pc_family_is_credential_param(PC_FAMILY_BEDROCK, S("X-Amz-Signature")));
  cr_expect(pc_family_is_credential_param(PC_FAMILY_BEDROCK, S("X-Amz-Credential")));
  cr_expect(pc_family_is_credential_param(PC_FAMILY_BEDROCK, S("X-Amz-Security-Token")));
  cr_expect_not(pc_family_is_credential_param(PC_FAMILY_OPENAI, S("X-Amz-Signature")));
  char longname[200];
  memset(longname, 'k', sizeof longname);
  cr_expect_not(pc_family_is_credential_param(PC_FAMILY_GEMINI, longname, sizeof longname));
}

Test(family, credential_identity_of_sigv4_is_the_access_key) {
  const char *id;
  size_t n;
  const char *sig = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, "
                    "SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";
  pc_family_credential_identity(S("Authorization"), S(sig), &id, &n);
  cr_expect_eq(n, 11);
  cr_expect_arr_eq(id, "AKIDEXAMPLE", 11);
  pc_family_credential_identity(S("authorization"), S("Bearer sk-abc"), &id, &n);
  cr_expect_eq(n, 13);
  pc_family_credential_identity(S("x-api-key"), S(sig), &id, &n);
  cr_expect_eq(n, strlen(sig), "only the Authorization header is SigV4");
}

/* ---- streaming ---- */

Test(family, streams) {
  static const struct {
    enum pc_family_id f;
    const char *path;
    int field, want;
  } c[] = {
      {PC_FAMILY_DEFAULT, "/v1/chat/completions", 1, 1},
      {PC_FAMILY_DEFAULT, "/v1/chat/completions", -1, 0},
      {PC_FAMILY_DEFAULT, "/v1beta/models/g:streamGenerateContent", -1, 0}, /* today's rule */
      {PC_FAMILY_OPENAI, "/v1/chat/completions", 0, 0},
      {PC_FAMILY_OPENAI, "/v1/responses", 1, 1},
      {PC_FAMILY_OPENAI, "/v1/embeddings", 1, 0},
      {PC_FAMILY_ANTHROPIC, "/v1/messages", 1, 1},
      {PC_FAMILY_GEMINI, "/v1beta/models/g:streamGenerateContent", -1, 1},
      {PC_FAMILY_GEMINI, "/v1beta/models/g:generateContent", 1, 0},
      {PC_FAMILY_AZURE, "/openai/deployments/d/chat/completions", 1, 1},
      {PC_FAMILY_AZURE, "/openai/deployments/d/chat/completions", -1, 0},
      {PC_FAMILY_OLLAMA, "/api/chat", -1, 1}, /* Ollama streams unless told not to */
      {PC_FAMILY_OLLAMA, "/api/generate", -1, 1},
      {PC_FAMILY_OLLAMA, "/api/chat", 0, 0},
      {PC_FAMILY_OLLAMA, "/api/chat", 1, 1},
      {PC_FAMILY_OLLAMA, "/api/embed", -1, 0},
      {PC_FAMILY_OLLAMA, "/v1/chat/completions", -1, 0},
      {PC_FAMILY_TGI, "/generate_stream", -1, 1},
      {PC_FAMILY_TGI, "/generate", 1, 0},
      {PC_FAMILY_TGI, "/", 1, 1},
      {PC_FAMILY_TGI, "", -1, 0},
      {PC_FAMILY_LLAMACPP, "/completion", 1, 1},
      {PC_FAMILY_LLAMACPP, "/completion", -1, 0},
      {PC_FAMILY_BEDROCK, "/model/m/converse-stream", -1, 1},
      {PC_FAMILY_BEDROCK, "/model/m/invoke-with-response-stream", -1, 1},
      {PC_FAMILY_BEDROCK, "/model/m/converse", 1, 0},
      {PC_FAMILY_BEDROCK, "/model/m/invoke", -1, 0},
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++)
    cr_expect_eq(pc_family_streams(c[i].f, S(c[i].path), c[i].field), c[i].want, "%s %s stream=%d",
                 pc_family_name(c[i].f), c[i].path, c[i].field);
}

/* ---- framing, completeness, usage on wire samples ---- */

static struct pc_family_response resp(const char *path, const char *ct, int streamed, const char *body, size_t n) {
  return (struct pc_family_response){.path = path,
                                     .path_len = strlen(path),
                                     .streamed = streamed,
                                     .content_type = ct,
                                     .ctlen = ct ? strlen(ct) : 0,
                                     .body = body,
                                     .n = n,
                                     .clean_end = 1};
}

static int complete(enum pc_family_id f, const char *path, const char *ct, int streamed, const char *body) {
  struct pc_family_response r = resp(path, ct, streamed, body, strlen(body));
  return pc_family_complete(f, &r);
}

static struct pc_usage usage_h(enum pc_family_id f, const char *ct, const char *headers, const char *body, size_t n) {
  struct pc_family_response r = resp("/", ct, 0, body, n);
  r.headers = headers;
  r.hlen = headers ? strlen(headers) : 0;
  struct pc_usage u;
  pc_family_usage(f, &r, &u);
  return u;
}

static struct pc_usage usage(enum pc_family_id f, const char *ct, const char *body) {
  return usage_h(f, ct, NULL, body, strlen(body));
}

#define EXPECT_USAGE(u, in, out, cached, write)                                                                 \
  do {                                                                                                          \
    struct pc_usage u_ = (u);                                                                                   \
    cr_expect(u_.present);                                                                                      \
    cr_expect_eq(u_.input, in, "input %llu", (unsigned long long)u_.input);                                     \
    cr_expect_eq(u_.output, out, "output %llu", (unsigned long long)u_.output);                                 \
    cr_expect_eq(u_.cached_input, cached, "cached %llu", (unsigned long long)u_.cached_input);                  \
    cr_expect_eq(u_.cache_write, write, "cache_write %llu", (unsigned long long)u_.cache_write);                \
  } while (0)

#define SSE "text/event-stream; charset=utf-8"
#define JSON "application/json"
#define NDJSON "application/x-ndjson"
#define ES "application/vnd.amazon.eventstream"

Test(family, framing) {
  struct pc_family_response r = resp("/v1/chat/completions", SSE, 1, "", 0);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OPENAI, &r), PC_FRAMING_SSE);
  r.content_type = "Application/JSON ; charset=utf-8", r.ctlen = strlen(r.content_type);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OPENAI, &r), PC_FRAMING_JSON);
  r.content_type = "application/problem+json", r.ctlen = strlen(r.content_type);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OPENAI, &r), PC_FRAMING_JSON);
  r.content_type = NDJSON, r.ctlen = strlen(NDJSON);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OLLAMA, &r), PC_FRAMING_NDJSON);
  r.content_type = ES, r.ctlen = strlen(ES);
  cr_expect_eq(pc_family_framing(PC_FAMILY_BEDROCK, &r), PC_FRAMING_EVENTSTREAM);
  r.content_type = "audio/mpeg", r.ctlen = strlen(r.content_type);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OPENAI, &r), PC_FRAMING_OTHER);
  r.content_type = "text/event-streamx", r.ctlen = strlen(r.content_type);
  cr_expect_eq(pc_family_framing(PC_FAMILY_OPENAI, &r), PC_FRAMING_OTHER);
  /* no content type: by the family and the request */
  r.content_type = NULL, r.ctlen = 0;
  r.path = "/api/chat", r.path_len = 9;
  cr_expect_eq(pc_family_framing(PC_FAMILY_OLLAMA, &r), PC_FRAMING_NDJSON);
  r.path = "/model/m/converse-stream", r.path_len = strlen(r.path);
  cr_expect_eq(pc_family_framing(PC_FAMILY_BEDROCK, &r), PC_FRAMING_EVENTSTREAM);
  r.streamed = 0, r.body = " {\"a\":1}", r.n = 8;
  cr_expect_eq(pc_family_framing(PC_FAMILY_BEDROCK, &r), PC_FRAMING_JSON);
  r.body = "hello", r.n = 5;
  cr_expect_eq(pc_family_framing(PC_FAMILY_BEDROCK, &r), PC_FRAMING_OTHER);
}

Test(family, a_cut_transfer_is_never_complete) {
  struct pc_family_response r = resp("/v1/embeddings", JSON, 0, "{}", 2);
  cr_expect(pc_family_complete(PC_FAMILY_OPENAI, &r));
  r.clean_end = 0;
  for (size_t i = 0; i < N_ALL; i++) cr_expect_not(pc_family_complete(all[i], &r));
}

Test(family, json_answers_must_parse) {
  for (size_t i = 0; i < N_ALL; i++) {
    cr_expect(complete(all[i], "/x", JSON, 0, "{\"id\":1}"));
    cr_expect_not(complete(all[i], "/x", JSON, 0, "{\"id\":1"), "%s", pc_family_name(all[i]));
    cr_expect_not(complete(all[i], "/x", JSON, 0, ""));
    cr_expect(complete(all[i], "/x", "application/octet-stream", 0, "\x01\x02"));
  }
}

/* OpenAI chat completion stream with stream_options.include_usage (as
 * api.openai.com sends it; Azure adds a first chunk of prompt_filter_results). */
static const char openai_stream[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
    "data: [DONE]\n\n";

Test(family, openai_and_azure_streams) {
  const enum pc_family_id fams[] = {PC_FAMILY_DEFAULT, PC_FAMILY_OPENAI, PC_FAMILY_AZURE};
  const char *paths[] = {"/v1/chat/completions", "/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions"};
  for (int i = 0; i < 3; i++) {
    cr_expect(complete(fams[i], paths[i], SSE, 1, openai_stream));
    char cut[sizeof openai_stream];
    size_t n = strlen(openai_stream) - strlen("data: [DONE]\n\n");
    memcpy(cut, openai_stream, n);
    cut[n] = '\0';
    cr_expect_not(complete(fams[i], paths[i], SSE, 1, cut), "%s without [DONE]", pc_family_name(fams[i]));
    cr_expect_not(complete(fams[i], paths[i], SSE, 1,
                           "data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}\n\n"));
    EXPECT_USAGE(usage(fams[i], SSE, openai_stream), 19, 10, 0, 0);
  }
  EXPECT_USAGE(usage(PC_FAMILY_AZURE, JSON,
                     "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,"
                     "\"total_tokens\":127,\"prompt_tokens_details\":{\"cached_tokens\":64},"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}"),
               120, 7, 64, 0);
}

static const char anthropic_stream[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":"
    "{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":"
    "{\"output_tokens\":15}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

Test(family, anthropic_stream) {
  cr_expect(complete(PC_FAMILY_ANTHROPIC, "/v1/messages", SSE, 1, anthropic_stream));
  cr_expect_not(complete(PC_FAMILY_ANTHROPIC, "/v1/messages", SSE, 1,
                         "event: message_start\ndata: {}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":"
                         "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"));
  EXPECT_USAGE(usage(PC_FAMILY_ANTHROPIC, SSE, anthropic_stream), 2125, 15, 2000, 100);
}

static const char responses_stream[] =
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\","
    "\"status\":\"in_progress\",\"usage\":null}}\n\n"
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,"
    "\"delta\":\"Hi\"}\n\n"
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":"
    "\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":0},"
    "\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":64},\"total_tokens\":123}}}\n\n";

Test(family, responses_stream) {
  cr_expect(complete(PC_FAMILY_OPENAI, "/v1/responses", SSE, 1, responses_stream));
  cr_expect(complete(PC_FAMILY_AZURE, "/openai/v1/responses", SSE, 1, responses_stream));
  cr_expect_not(complete(PC_FAMILY_OPENAI, "/v1/responses", SSE, 1,
                         "event: response.created\ndata: {}\n\nevent: response.failed\ndata: {}\n\n"));
  EXPECT_USAGE(usage(PC_FAMILY_OPENAI, SSE, responses_stream), 36, 87, 0, 0);
}

/* Gemini :streamGenerateContent?alt=sse, as the API sends it (CRLF). */
static const char gemini_sse[] =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],"
    "\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9,\"promptTokensDetails\": [{\"modality\": "
    "\"TEXT\",\"tokenCount\": 9}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world\"}],\"role\": \"model\"},"
    "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2,"
    "\"totalTokenCount\": 40,\"cachedContentTokenCount\": 4,\"thoughtsTokenCount\": 29},\"modelVersion\": "
    "\"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n";

/* The same without alt=sse: one JSON array, streamed element by element. */
static const char gemini_array[] =
    "[{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],"
    "\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9}}\r\n,"
    "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world\"}],\"role\": \"model\"},\"finishReason\": "
    "\"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2,"
    "\"totalTokenCount\": 11}}\r\n]";

Test(family, gemini_streams_end_with_a_finish_reason) {
  const char *p = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
  cr_expect(complete(PC_FAMILY_GEMINI, p, "text/event-stream", 1, gemini_sse));
  const char *second = strstr(gemini_sse, "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world");
  char first[sizeof gemini_sse];
  memcpy(first, gemini_sse, (size_t)(second - gemini_sse));
  first[second - gemini_sse] = '\0';
  cr_expect_not(complete(PC_FAMILY_GEMINI, p, "text/event-stream", 1, first), "no finishReason yet");
  cr_expect(complete(PC_FAMILY_DEFAULT, p, "text/event-stream", 1, first), "the default family: a clean end, as today");
  cr_expect(complete(PC_FAMILY_GEMINI, p, JSON, 1, gemini_array));
  cr_expect_not(complete(PC_FAMILY_GEMINI, p, JSON, 1, "[{\"candidates\": [{\"index\": 0}]}]"));
  cr_expect(complete(PC_FAMILY_GEMINI, p, JSON, 1, "[{\"promptFeedback\": {\"blockReason\": \"SAFETY\"}}]"));
  EXPECT_USAGE(usage(PC_FAMILY_GEMINI, "text/event-stream", gemini_sse), 9, 31, 4, 0);
  EXPECT_USAGE(usage(PC_FAMILY_GEMINI, JSON, gemini_array), 9, 2, 0, 0);
  EXPECT_USAGE(usage(PC_FAMILY_GEMINI, JSON,
                     "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}],\"role\":\"model\"},\"finishReason\":"
                     "\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":5,"
                     "\"toolUsePromptTokenCount\":20,\"totalTokenCount\":125}}"),
               120, 5, 0, 0);
}

/* Ollama /api/chat, streamed (the default): NDJSON ending at "done": true. */
static const char ollama_stream[] =
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\",\"message\":{\"role\":\"assistant\","
    "\"content\":\"The\"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\",\"message\":{\"role\":\"assistant\","
    "\"content\":\" sky\"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\",\"message\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":4883583458,\"load_duration\":1334875,"
    "\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}\n";

Test(family, ollama_ndjson_ends_at_done) {
  cr_expect(complete(PC_FAMILY_OLLAMA, "/api/chat", NDJSON, 1, ollama_stream));
  cr_expect(complete(PC_FAMILY_OLLAMA, "/api/chat", NULL, 1, ollama_stream), "framing from the family");
  const char *last = strstr(ollama_stream, "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19");
  char cut[sizeof ollama_stream];
  memcpy(cut, ollama_stream, (size_t)(last - ollama_stream));
  cut[last - ollama_stream] = '\0';
  cr_expect_not(complete(PC_FAMILY_OLLAMA, "/api/chat", NDJSON, 1, cut));
  char err[sizeof ollama_stream + 100];
  snprintf(err, sizeof err, "%s{\"error\":\"an error was encountered while running the model\"}\n", cut);
  cr_expect_not(complete(PC_FAMILY_OLLAMA, "/api/chat", NDJSON, 1, err));
  cr_expect_not(complete(PC_FAMILY_OLLAMA, "/api/chat", NDJSON, 1, ""));
  /* "stream": false answers one JSON object, also with "done": true */
  const char *one = "{\"model\":\"llama3.2\",\"created_at\":\"2023-12-12T14:13:43.416799Z\",\"response\":\"Hello!\","
                    "\"done\":true,\"context\":[1,2,3],\"total_duration\":5043500667,\"prompt_eval_count\":26,"
                    "\"eval_count\":290}";
  cr_expect(complete(PC_FAMILY_OLLAMA, "/api/generate", "application/json; charset=utf-8", 0, one));
  cr_expect_not(complete(PC_FAMILY_OLLAMA, "/api/generate", JSON, 0, "{\"model\":\"m\",\"done\":false}"));
  EXPECT_USAGE(usage(PC_FAMILY_OLLAMA, NDJSON, ollama_stream), 26, 282, 0, 0);
  EXPECT_USAGE(usage(PC_FAMILY_OLLAMA, JSON, one), 26, 290, 0, 0);
  EXPECT_USAGE(usage(PC_FAMILY_OLLAMA, JSON,
                     "{\"model\":\"all-minilm\",\"embeddings\":[[0.01,-0.02]],\"total_duration\":14143917,"
                     "\"load_duration\":1019500,\"prompt_eval_count\":8}"),
               8, 0, 0, 0);
  /* its OpenAI-compatible endpoint answers OpenAI's shapes */
  cr_expect(complete(PC_FAMILY_OLLAMA, "/v1/chat/completions", SSE, 1, openai_stream));
  EXPECT_USAGE(usage(PC_FAMILY_OLLAMA, SSE, openai_stream), 19, 10, 0, 0);
}

/* TGI /generate_stream: `data:` without a space (axum), final event with
 * generated_text and details. */
static const char tgi_stream[] =
    "data:{\"index\":1,\"token\":{\"id\":578,\"text\":\" The\",\"logprob\":-0.41,\"special\":false},"
    "\"generated_text\":null,\"details\":null}\n\n"
    "data:{\"index\":2,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":-0.1,\"special\":true},\"generated_text\":"
    "\"The answer\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":2,\"seed\":null,"
    "\"input_length\":7}}\n\n";

Test(family, tgi_generate_stream_and_generate) {
  cr_expect(complete(PC_FAMILY_TGI, "/generate_stream", SSE, 1, tgi_stream));
  cr_expect(complete(PC_FAMILY_TGI, "/", SSE, 1, tgi_stream));
  cr_expect_not(complete(PC_FAMILY_TGI, "/generate_stream", SSE, 1,
                         "data:{\"index\":1,\"token\":{\"id\":578,\"text\":\" The\"},\"generated_text\":null,"
                         "\"details\":null}\n\n"));
  cr_expect_not(complete(PC_FAMILY_TGI, "/generate_stream", SSE, 1,
                         "data:{\"index\":1,\"token\":{\"id\":578,\"text\":\" The\"},\"generated_text\":null,"
                         "\"details\":null}\n\ndata:{\"error\":\"Request failed during generation\","
                         "\"error_type\":\"generation\"}\n\n"));
  EXPECT_USAGE(usage(PC_FAMILY_TGI, SSE, tgi_stream), 7, 2, 0, 0);
  const char *gen = "{\"generated_text\":\"test\",\"details\":{\"finish_reason\":\"length\",\"generated_tokens\":1,"
                    "\"seed\":null,\"prefill\":[{\"id\":1,\"text\":\"<s>\",\"logprob\":null},{\"id\":22,\"text\":\"Hi\","
                    "\"logprob\":-1.2}],\"tokens\":[{\"id\":1243,\"text\":\"test\",\"logprob\":-0.3,\"special\":false}]}}";
  cr_expect(complete(PC_FAMILY_TGI, "/generate", JSON, 0, gen));
  EXPECT_USAGE(usage(PC_FAMILY_TGI, JSON, gen), 2, 1, 0, 0);
  /* without details, the router's headers tell */
  EXPECT_USAGE(usage_h(PC_FAMILY_TGI, JSON,
                       "Content-Type: application/json\r\nx-compute-type: 1-nvidia-a10g\r\nX-Prompt-Tokens: 12\r\n"
                       "x-generated-tokens: 20\r\n",
                       S("{\"generated_text\":\"x\"}")),
               12, 20, 0, 0);
  /* POST / without streaming answers an array */
  EXPECT_USAGE(usage(PC_FAMILY_TGI, JSON,
                     "[{\"generated_text\":\"x\",\"details\":{\"finish_reason\":\"length\",\"generated_tokens\":3}}]"),
               0, 3, 0, 0);
}

/* llama-server native /completion stream: the final event has "stop": true,
 * the counts and the timings. */
static const char llamacpp_stream[] =
    "data: {\"index\":0,\"content\":\"Hello\",\"tokens\":[15043],\"stop\":false,\"id_slot\":-1,"
    "\"tokens_predicted\":1,\"tokens_evaluated\":6}\n\n"
    "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"gpt-3.5-turbo\","
    "\"tokens_predicted\":3,\"tokens_evaluated\":6,\"generation_settings\":{\"n_predict\":3},\"prompt\":\"<s> Hi\","
    "\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"limit\",\"stopping_word\":\"\",\"tokens_cached\":8,"
    "\"timings\":{\"cache_n\":4,\"prompt_n\":2,\"prompt_ms\":12.1,\"prompt_per_token_ms\":6.05,"
    "\"prompt_per_second\":165.2,\"predicted_n\":3,\"predicted_ms\":30.0,\"predicted_per_token_ms\":10.0,"
    "\"predicted_per_second\":100.0}}\n\n";

Test(family, llamacpp_completion) {
  cr_expect(complete(PC_FAMILY_LLAMACPP, "/completion", SSE, 1, llamacpp_stream));
  const char *last = strstr(llamacpp_stream, "data: {\"index\":0,\"content\":\"\"");
  char cut[sizeof llamacpp_stream];
  memcpy(cut, llamacpp_stream, (size_t)(last - llamacpp_stream));
  cut[last - llamacpp_stream] = '\0';
  cr_expect_not(complete(PC_FAMILY_LLAMACPP, "/completion", SSE, 1, cut));
  char err[sizeof llamacpp_stream + 200];
  snprintf(err, sizeof err, "%serror: {\"code\":500,\"message\":\"slot unavailable\",\"type\":\"server_error\"}\n\n", cut);
  cr_expect_not(complete(PC_FAMILY_LLAMACPP, "/completion", SSE, 1, err));
  cr_expect(complete(PC_FAMILY_LLAMACPP, "/completions", SSE, 1, "data: {\"content\":\"x\",\"stop\":false}\n\ndata: [DONE]\n\n"));
  EXPECT_USAGE(usage(PC_FAMILY_LLAMACPP, SSE, llamacpp_stream), 6, 3, 4, 0);
  /* its OpenAI endpoint: [DONE] and `usage` */
  cr_expect(complete(PC_FAMILY_LLAMACPP, "/v1/chat/completions", SSE, 1, openai_stream));
  cr_expect_not(complete(PC_FAMILY_LLAMACPP, "/v1/chat/completions", SSE, 1, llamacpp_stream));
  EXPECT_USAGE(usage(PC_FAMILY_LLAMACPP, JSON,
                     "{\"choices\":[],\"usage\":{\"completion_tokens\":5,\"prompt_tokens\":10,\"total_tokens\":15},"
                     "\"timings\":{\"prompt_n\":10,\"predicted_n\":5}}"),
               10, 5, 0, 0);
}

/* ---- Bedrock ---- */

static void event(pc_buf *b, const char *type, const char *json) {
  cr_assert_eq(pc_eventstream_encode_event(b, type, "application/json", json, strlen(json)), 0);
}

/* ConverseStream as Bedrock frames it (payloads carry a "p" padding field). */
static void converse_stream(pc_buf *b, int with_stop, int with_metadata) {
  event(b, "messageStart", "{\"p\":\"abcdefghijkl\",\"role\":\"assistant\"}");
  event(b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hello\"},\"p\":\"abcdefgh\"}");
  event(b, "contentBlockStop", "{\"contentBlockIndex\":0,\"p\":\"abcdefghijklmnop\"}");
  if (with_stop) event(b, "messageStop", "{\"p\":\"abc\",\"stopReason\":\"end_turn\"}");
  if (with_metadata)
    event(b, "metadata",
          "{\"metrics\":{\"latencyMs\":344},\"p\":\"abcdef\",\"usage\":{\"cacheReadInputTokens\":1068,"
          "\"cacheWriteInputTokens\":0,\"inputTokens\":4,\"outputTokens\":135,\"totalTokens\":1207}}");
}

static int complete_bin(enum pc_family_id f, const char *path, const char *ct, const pc_buf *b) {
  struct pc_family_response r = resp(path, ct, 1, b->data, b->len);
  return pc_family_complete(f, &r);
}

Test(family, bedrock_converse_stream) {
  const char *p = "/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/converse-stream";
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  converse_stream(&b, 1, 1);
  cr_expect(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b));
  cr_expect(complete_bin(PC_FAMILY_BEDROCK, p, NULL, &b), "framing from the path");
  EXPECT_USAGE(usage_h(PC_FAMILY_BEDROCK, ES, NULL, b.data, b.len), 1072, 135, 1068, 0);
  /* every cut inside the last message, and the message itself missing */
  size_t whole = b.len;
  for (size_t n = whole - 1; n > whole - 40; n--) {
    struct pc_family_response r = resp(p, ES, 1, b.data, n);
    cr_expect_not(pc_family_complete(PC_FAMILY_BEDROCK, &r), "cut at %zu", n);
  }
  pc_buf_reset(&b);
  converse_stream(&b, 1, 0);
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b), "no metadata event");
  pc_buf_reset(&b);
  converse_stream(&b, 0, 1);
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b), "no messageStop");
  /* a modelStreamErrorException after the content */
  pc_buf_reset(&b);
  converse_stream(&b, 0, 0);
  const struct pc_eventstream_header h[] = {
      {.name = ":message-type", .name_len = 13, .type = PC_EVENTSTREAM_STRING, .bytes = "exception", .bytes_len = 9},
      {.name = ":exception-type", .name_len = 15, .type = PC_EVENTSTREAM_STRING, .bytes = "modelStreamErrorException",
       .bytes_len = 25}};
  cr_assert_eq(pc_eventstream_encode(&b, h, 2, "{\"message\":\"x\"}", 15), 0);
  converse_stream(&b, 1, 1);
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b), "an exception anywhere");
  /* a damaged CRC */
  pc_buf_reset(&b);
  converse_stream(&b, 1, 1);
  b.data[30] ^= 0x20;
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b));
  pc_buf_free(&b);
}

static void b64(const char *s, char *out) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(s), o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)s[i] << 16 | (i + 1 < n ? (unsigned char)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? (unsigned char)s[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? a[v & 63] : '=';
  }
  out[o] = '\0';
}

/* One InvokeModelWithResponseStream chunk: the model's event in base64. */
static void chunk(pc_buf *b, const char *model_event) {
  char enc[2048], json[2200];
  b64(model_event, enc);
  snprintf(json, sizeof json, "{\"bytes\":\"%s\",\"p\":\"abcd\"}", enc);
  event(b, "chunk", json);
}

static void invoke_stream(pc_buf *b, int whole) {
  chunk(b, "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bdrk_1\",\"type\":\"message\",\"role\":\"assistant\","
           "\"model\":\"claude-3-haiku-20240307\",\"content\":[],\"usage\":{\"input_tokens\":14,"
           "\"cache_read_input_tokens\":6,\"output_tokens\":1}}}");
  chunk(b, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}");
  chunk(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}");
  if (whole)
    chunk(b, "{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":14,"
             "\"outputTokenCount\":9,\"invocationLatency\":412,\"firstByteLatency\":300,\"cacheReadInputTokenCount\":6}}");
}

Test(family, bedrock_invoke_with_response_stream) {
  const char *p = "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream";
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  invoke_stream(&b, 1);
  cr_expect(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b));
  EXPECT_USAGE(usage_h(PC_FAMILY_BEDROCK, ES, NULL, b.data, b.len), 20, 9, 6, 0);
  pc_buf_reset(&b);
  invoke_stream(&b, 0);
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b), "no invocation metrics yet");
  event(&b, "chunk", "{\"bytes\":\"not base64!\"}");
  cr_expect_not(complete_bin(PC_FAMILY_BEDROCK, p, ES, &b));
  pc_buf_free(&b);
}

Test(family, bedrock_converse_and_invoke_json) {
  const char *converse = "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"Hi\"}]}},"
                         "\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":4,\"outputTokens\":135,"
                         "\"totalTokens\":1307,\"cacheReadInputTokens\":1068,\"cacheWriteInputTokens\":100},"
                         "\"metrics\":{\"latencyMs\":1200}}";
  cr_expect(complete(PC_FAMILY_BEDROCK, "/model/m/converse", JSON, 0, converse));
  EXPECT_USAGE(usage(PC_FAMILY_BEDROCK, JSON, converse), 1172, 135, 1068, 100);
  /* InvokeModel: the model's own body (Anthropic-shaped for Claude) and the
   * token-count headers Bedrock adds for every model */
  const char *claude = "{\"id\":\"msg_bdrk_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":12,\"output_tokens\":6}}";
  const char *hdrs = "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: application/json\r\n"
                     "X-Amzn-Bedrock-Invocation-Latency: 512\r\nX-Amzn-Bedrock-Output-Token-Count: 6\r\n"
                     "X-Amzn-Bedrock-Input-Token-Count: 12\r\n";
  EXPECT_USAGE(usage_h(PC_FAMILY_BEDROCK, JSON, hdrs, S(claude)), 12, 6, 0, 0);
  const char *titan = "{\"inputTextTokenCount\":5,\"results\":[{\"tokenCount\":3,\"outputText\":\"x\","
                      "\"completionReason\":\"FINISH\"}]}";
  EXPECT_USAGE(usage_h(PC_FAMILY_BEDROCK, JSON, hdrs, S(titan)), 12, 6, 0, 0);
  struct pc_usage none = usage_h(PC_FAMILY_BEDROCK, JSON, NULL, S(titan));
  cr_expect_not(none.present);
}

/* ---- the default family is today's behaviour ---- */

Test(family, default_family_matches_sse_c_and_usage_c) {
  static const char *const paths[] = {"/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses",
                                      "/v1beta/models/g:streamGenerateContent", "/v1/threads/t/runs"};
  static const char *const bodies[] = {openai_stream, anthropic_stream, responses_stream, gemini_sse,
                                       "data: {\"a\":1}\n\n", "event: done\ndata: [DONE]\n\n", ""};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
    for (size_t j = 0; j < sizeof bodies / sizeof *bodies; j++) {
      int today = pc_sse_complete(pc_sse_terminal_for(S(paths[i])), S(bodies[j]));
      cr_expect_eq(complete(PC_FAMILY_DEFAULT, paths[i], SSE, 1, bodies[j]), today, "%s, body %zu", paths[i], j);
      struct pc_usage a, b = usage(PC_FAMILY_DEFAULT, SSE, bodies[j]);
      pc_usage_from_body(S(bodies[j]), 1, &a);
      cr_expect(!memcmp(&a, &b, sizeof a), "usage of body %zu", j);
    }
  struct pc_usage a, b = usage(PC_FAMILY_DEFAULT, JSON, gemini_array);
  pc_usage_from_body(S(gemini_array), 0, &a);
  cr_expect(!memcmp(&a, &b, sizeof a));
}
