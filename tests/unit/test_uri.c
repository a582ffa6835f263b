/* test_uri.c - PostgreSQL URIs as BACKING: shape check, the redacted form, argv scrubbing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "store_uri.h"

static store_uri parse_ok(const char *s)
{
	store_uri u;
	char err[256] = "";
	cr_assert_eq(store_uri_parse(s, &u, err, sizeof(err)), 0, "%s: %s", s, err);
	return u;
}

Test(uri, scheme)
{
	cr_assert(store_uri_is_pg("postgresql://h/db"));
	cr_assert(store_uri_is_pg("postgres://h/db"));
	cr_assert(store_uri_is_pg("PostgreSQL://h/db"));
	cr_assert(!store_uri_is_pg("/data/ckpt"));
	cr_assert(!store_uri_is_pg("postgresql:/h/db"));
	cr_assert(!store_uri_is_pg("mysql://h/db"));
}

Test(uri, parts_are_decoded)
{
	store_uri u = parse_ok("postgresql://al%20ice@db1:5432,db2/ck%2Fpt?sslmode=require");
	cr_assert_str_eq(u.user, "al ice");
	cr_assert_str_eq(u.dbname, "ck/pt");
	cr_assert_str_eq(u.hosts, "db1:5432,db2");
	cr_assert_eq(u.has_password, 0);
	u = parse_ok("postgres://%2Ftmp%2Fsock/ckpt");
	cr_assert_str_eq(u.hosts, "%2Ftmp%2Fsock");
	cr_assert_str_eq(u.user, "");
}

Test(uri, passwords_never_in_the_printed_form)
{
	const char *s = "postgresql://alice:s3cr%40t@db/ckpt?password=other&application_name=x";
	store_uri u = parse_ok(s);
	cr_assert_eq(u.has_password, 1);
	cr_assert_str_eq(u.redacted,
			 "postgresql://alice:****@db/ckpt?password=****&application_name=x");
	cr_assert_null(strstr(u.redacted, "s3cr"));
	cr_assert_null(strstr(u.redacted, "other"));
	/* an escaped parameter name is still a password */
	u = parse_ok("postgresql://db/ckpt?pass%77ord=zz");
	cr_assert_eq(u.has_password, 1);
	cr_assert_null(strstr(u.redacted, "zz"));
}

Test(uri, identity_does_not_depend_on_the_password)
{
	store_uri a = parse_ok("postgresql://alice:one@db/ckpt");
	store_uri b = parse_ok("postgresql://alice:two@db/ckpt");
	store_uri c = parse_ok("postgresql://alice@db/other");
	cr_assert_eq(a.id, b.id);
	cr_assert_neq(a.id, c.id);
}

Test(uri, scrub_overwrites_passwords_in_place)
{
	char s[] = "postgresql://alice:s3cr%40t@db/ckpt?password=zz&x=1";
	store_uri_scrub(s);
	cr_assert_str_eq(s, "postgresql://alice:xxxxxxxx@db/ckpt?password=xx&x=1");
	char d[] = "/data/ckpt";
	store_uri_scrub(d);
	cr_assert_str_eq(d, "/data/ckpt");
}

Test(uri, bad_input_is_refused_with_a_reason)
{
	const char *bad[] = {"/data/ckpt", "postgresql://h/d%zz", "postgresql://h/db?password",
			     "postgresql://h/db?a=1&", "postgresql://h /db", "postgresql://u%00@h/db",
			     "postgresql://h/db?=x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		store_uri u;
		char err[256] = "";
		cr_assert_eq(store_uri_parse(bad[i], &u, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert(err[0], "%s: no reason given", bad[i]);
	}
	/* the reason never carries the password */
	store_uri u;
	char err[256] = "";
	cr_assert_eq(store_uri_parse("postgresql://u:hunter2@h/d%zz", &u, err, sizeof(err)),
		     -EINVAL);
	cr_assert_null(strstr(err, "hunter2"));
}
