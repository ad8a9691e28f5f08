/* test_awscred.c — AWS credentials from the environment and the shared files
 * (profiles, precedence, the INI dialect the AWS CLI writes), secrets wiped
 * on free, and the parse of a client's SigV4 Authorization header. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "awscred.h"
#include "error.h"

#define S(x) x, strlen(x)

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/pc_awscred_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  char aws[128];
  snprintf(aws, sizeof aws, "%s/.aws", dir);
  cr_assert_eq(mkdir(aws, 0700), 0);
}

static void remove_dir(void) {
  char p[160];
  snprintf(p, sizeof p, "%s/.aws/credentials", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/.aws/config", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/other", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/.aws", dir);
  rmdir(p);
  rmdir(dir);
}

static void write_file(const char *rel, const char *text) {
  char p[160];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* An environment with HOME pointing at the test's directory. */
static char home[96];
#define ENV(...)                                                                                                \
  (char *const[]) { home, __VA_ARGS__, NULL }

static const char credentials[] = "# written by aws configure\n"
                                  "[default]\n"
                                  "aws_access_key_id = AKIADEFAULT000000000\n"
                                  "aws_secret_access_key = defaultSecret/+abc\n"
                                  "\n"
                                  "[work]\r\n"
                                  "aws_access_key_id=AKIAWORK000000000000\r\n"
                                  "aws_secret_access_key=workSecret\r\n"
                                  "aws_session_token = workToken==\r\n"
                                  "; a comment\r\n"
                                  "[profile work]\n" /* not a profile name in this file */
                                  "aws_access_key_id = AKIAWRONG00000000000\n";

static const char config[] = "[default]\n"
                             "region = eu-west-1\n"
                             "s3 =\n"
                             "    region = nested-not-this-one\n"
                             "[profile work]\n"
                             "region=us-east-2\n"
                             "output = json\n"
                             "[profile cfgonly]\n"
                             "region = ap-south-1\n"
                             "aws_access_key_id = AKIACFGONLY000000000\n"
                             "aws_secret_access_key = cfgSecret\n"
                             "[work]\n" /* the config file names it [profile work] */
                             "region = wrong-1\n";

static void setup(void) {
  make_dir();
  snprintf(home, sizeof home, "HOME=%s", dir);
  write_file(".aws/credentials", credentials);
  write_file(".aws/config", config);
}

TestSuite(awscred, .init = setup, .fini = remove_dir);

Test(awscred, environment_wins) {
  struct pc_awscred c = {0};
  cr_assert_eq(pc_awscred_load(&c, ENV("AWS_ACCESS_KEY_ID=AKIAENV0000000000000", "AWS_SECRET_ACCESS_KEY=envSecret",
                                       "AWS_SESSION_TOKEN=envToken", "AWS_REGION=us-west-2",
                                       "AWS_DEFAULT_REGION=eu-central-1")),
               0);
  cr_expect_str_eq(c.access_key_id, "AKIAENV0000000000000");
  cr_expect_str_eq(c.secret_access_key, "envSecret");
  cr_expect_str_eq(c.session_token, "envToken");
  cr_expect_str_eq(c.region, "us-west-2");
  cr_expect_str_eq(c.source, "environment");
  pc_awscred_free(&c);
  cr_expect_null(c.access_key_id);
  cr_expect_null(c.secret_access_key);
  cr_expect_null(c.session_token);
  cr_expect_null(c.region);
}

Test(awscred, default_region_variable_and_default_profile) {
  struct pc_awscred c = {0};
  cr_assert_eq(pc_awscred_load(&c, ENV("AWS_DEFAULT_REGION=eu-central-1")), 0);
  cr_expect_str_eq(c.access_key_id, "AKIADEFAULT000000000");
  cr_expect_str_eq(c.secret_access_key, "defaultSecret/+abc");
  cr_expect_null(c.session_token);
  cr_expect_str_eq(c.region, "eu-central-1", "the variable wins over the config file");
  cr_expect_str_eq(c.source, "credentials file");
  pc_awscred_free(&c);
  cr_assert_eq(pc_awscred_load(&c, ENV("X=1")), 0);
  cr_expect_str_eq(c.region, "eu-west-1", "[default] of the config file, not the nested s3 block");
  pc_awscred_free(&c);
}

Test(awscred, named_profile_from_both_files) {
  struct pc_awscred c = {0};
  cr_assert_eq(pc_awscred_load(&c, ENV("AWS_PROFILE=work")), 0);
  cr_expect_str_eq(c.access_key_id, "AKIAWORK000000000000");
  cr_expect_str_eq(c.secret_access_key, "workSecret");
  cr_expect_str_eq(c.session_token, "workToken==");
  cr_expect_str_eq(c.region, "us-east-2");
  pc_awscred_free(&c);
  cr_assert_eq(pc_awscred_load(&c, ENV("AWS_DEFAULT_PROFILE=cfgonly")), 0);
  cr_expect_str_eq(c.access_key_id, "AKIACFGONLY000000000", "keys may live in the config file");
  cr_expect_str_eq(c.region, "ap-south-1");
  cr_expect_str_eq(c.source, "config file");
  pc_awscred_free(&c);
}

Test(awscred, half_a_pair_in_the_environment_is_not_a_credential) {
  struct pc_awscred c = {0};
  cr_assert_eq(pc_awscred_load(&c, ENV("AWS_ACCESS_KEY_ID=AKIAHALF000000000000", "AWS_SECRET_ACCESS_KEY=")), 0);
  cr_expect_str_eq(c.access_key_id, "AKIADEFAULT000000000");
  cr_expect_str_eq(c.secret_access_key, "defaultSecret/+abc");
  pc_awscred_free(&c);
}

Test(awscred, file_variables_and_missing_profiles) {
  struct pc_awscred c = {0};
  char var[160];
  write_file("other", "[x]\naws_access_key_id = AKIAOTHER00000000000\naws_secret_access_key = s\n");
  snprintf(var, sizeof var, "AWS_SHARED_CREDENTIALS_FILE=%s/other", dir);
  cr_assert_eq(pc_awscred_load(&c, ENV(var, "AWS_PROFILE=x")), 0);
  cr_expect_str_eq(c.access_key_id, "AKIAOTHER00000000000");
  cr_expect_null(c.region);
  pc_awscred_free(&c);
  cr_expect_eq(pc_awscred_load(&c, ENV("AWS_PROFILE=nope")), PC_ENOTFOUND);
  cr_expect_null(c.access_key_id);
  pc_awscred_free(&c);
  cr_expect_eq(pc_awscred_load(&c, (char *const[]){"HOME=/nonexistent/dir", NULL}), PC_ENOTFOUND);
  pc_awscred_free(&c);
  snprintf(var, sizeof var, "AWS_CONFIG_FILE=%s", dir); /* a directory: exists, cannot be read */
  cr_expect_eq(pc_awscred_load(&c, ENV(var, "AWS_PROFILE=nope")), PC_EIO);
  cr_expect_null(c.access_key_id);
}

Test(awscred, parsers_fill_only_what_is_missing) {
  struct pc_awscred c = {0};
  c.access_key_id = strdup("AKIAKEEP000000000000");
  cr_assert_eq(pc_awscred_parse_credentials(S(credentials), "default", &c), 0);
  cr_expect_str_eq(c.access_key_id, "AKIAKEEP000000000000");
  cr_expect_str_eq(c.secret_access_key, "defaultSecret/+abc");
  cr_expect_eq(pc_awscred_parse_credentials(S(credentials), "missing", &c), PC_ENOTFOUND);
  cr_assert_eq(pc_awscred_parse_config(S("[profile  spaced ]\nregion =  sa-east-1  \n"), "spaced", &c), 0);
  cr_expect_str_eq(c.region, "sa-east-1");
  pc_awscred_free(&c);
}

/* The example of AWS's SigV4 documentation. */
static const char auth[] = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                           "SignedHeaders=host;range;x-amz-date, "
                           "Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";

#define SPAN_EQ(p, n, lit) (n == strlen(lit) && !memcmp(p, lit, n))

Test(awscred, sigv4_authorization) {
  struct pc_sigv4_auth a;
  cr_assert_eq(pc_awscred_parse_authorization(S(auth), &a), 0);
  cr_expect(SPAN_EQ(a.algorithm, a.algorithm_len, "AWS4-HMAC-SHA256"));
  cr_expect(SPAN_EQ(a.access_key_id, a.access_key_id_len, "AKIAIOSFODNN7EXAMPLE"));
  cr_expect(SPAN_EQ(a.date, a.date_len, "20130524"));
  cr_expect(SPAN_EQ(a.region, a.region_len, "us-east-1"));
  cr_expect(SPAN_EQ(a.service, a.service_len, "s3"));
  cr_expect(SPAN_EQ(a.signed_headers, a.signed_headers_len, "host;range;x-amz-date"));
  cr_expect_eq(a.signature_len, 64);
  /* parameters in another order, no spaces after the commas */
  const char *v = "AWS4-HMAC-SHA256 Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024,"
                  "SignedHeaders=content-type;host;x-amz-date,Credential=AKIDEXAMPLE/20240101/us-west-2/bedrock/aws4_request";
  cr_assert_eq(pc_awscred_parse_authorization(S(v), &a), 0);
  cr_expect(SPAN_EQ(a.access_key_id, a.access_key_id_len, "AKIDEXAMPLE"));
  cr_expect(SPAN_EQ(a.service, a.service_len, "bedrock"));
  cr_expect(SPAN_EQ(a.region, a.region_len, "us-west-2"));
  /* SigV4a has no region in its scope */
  v = "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20240101/bedrock/aws4_request, SignedHeaders=host, "
      "Signature=3045022100abcdef";
  cr_assert_eq(pc_awscred_parse_authorization(S(v), &a), 0);
  cr_expect(SPAN_EQ(a.access_key_id, a.access_key_id_len, "AKIDEXAMPLE"));
  cr_expect_eq(a.region_len, 0);
  cr_expect(SPAN_EQ(a.service, a.service_len, "bedrock"));
}

Test(awscred, sigv4_authorization_rejects) {
  static const char *const bad[] = {
      "Bearer sk-abc",
      "AWS4-HMAC-SHA256",
      "AWS4-HMAC-SHA256 ",
      "AWS4-HMAC-SHA1 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=xyz",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=fe5f",
      "AWS4-HMAC-SHA256 Credential=AKID/2024010/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws5_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/s3/aws4_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AK ID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request/x, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, Credential=AKID/20240101/us-east-1/s3/"
      "aws4_request, SignedHeaders=host, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request,, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
      "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature="
      "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024, Extra=1",
  };
  struct pc_sigv4_auth a;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_expect_eq(pc_awscred_parse_authorization(S(bad[i]), &a), PC_EINVAL, "accepted: %s", bad[i]);
    cr_expect_null(a.access_key_id);
  }
  /* every prefix of a valid header: rejected or parsed, never read past its end */
  for (size_t n = 0; n < strlen(auth); n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, auth, n);
    int rc = pc_awscred_parse_authorization(copy, n, &a);
    cr_expect(rc == 0 || rc == PC_EINVAL);
    free(copy);
  }
}
