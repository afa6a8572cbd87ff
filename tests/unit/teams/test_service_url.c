/* test_service_url.c: which serviceUrl values are trusted (SPEC §2, §3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "teams/service_url.h"

static char h1[] = "smba.trafficmanager.net", h2[] = "smba.infra.gcc.teams.microsoft.com",
            h3[] = ".example.org", h4[] = "127.0.0.1", h5[] = "localhost", h6[] = "::1";
static char *allow_items[] = {h1, h2, h3, h4, h5, h6};
static const struct config_list allow = {allow_items, 6};

static void allowed_https_hosts_pass(void **state)
{
    assert_int_equal(service_url_check("https://smba.trafficmanager.net/amer/", &allow), 0);
    assert_int_equal(
        service_url_check(
            "https://smba.trafficmanager.net/amer/50612dbb-0237-4969-b378-8d42590f9c00/", &allow),
        0);
    assert_int_equal(service_url_check("https://SMBA.TrafficManager.net/teams/", &allow), 0);
    assert_int_equal(service_url_check("https://smba.infra.gcc.teams.microsoft.com/gcc", &allow),
                     0);
    assert_int_equal(service_url_check("https://smba.trafficmanager.net:443/amer/", &allow), 0);
}

static void other_hosts_fail(void **state)
{
    assert_int_equal(service_url_check("https://evil.example.com/", &allow), DG_ERR_INVALID);
    assert_int_equal(service_url_check("https://smba.trafficmanager.net.evil.com/", &allow),
                     DG_ERR_INVALID);
    assert_int_equal(service_url_check("https://xsmba.trafficmanager.net/", &allow),
                     DG_ERR_INVALID);
    /* userinfo must not smuggle another host past the check */
    assert_int_equal(service_url_check("https://smba.trafficmanager.net@evil.com/", &allow),
                     DG_ERR_INVALID);
    assert_int_equal(service_url_check("ftp://smba.trafficmanager.net/", &allow), DG_ERR_INVALID);
    assert_int_equal(service_url_check("smba.trafficmanager.net", &allow), DG_ERR_INVALID);
    assert_int_equal(service_url_check("", &allow), DG_ERR_INVALID);
    assert_int_equal(service_url_check("https:///x", &allow), DG_ERR_INVALID);
}

static void dot_entries_admit_subdomains_only(void **state)
{
    assert_int_equal(service_url_check("https://a.example.org/", &allow), 0);
    assert_int_equal(service_url_check("https://a.b.example.org/", &allow), 0);
    assert_int_equal(service_url_check("https://example.org/", &allow), DG_ERR_INVALID);
    assert_int_equal(service_url_check("https://aexample.org/", &allow), DG_ERR_INVALID);
}

static void plain_http_only_for_listed_loopback(void **state)
{
    assert_int_equal(service_url_check("http://127.0.0.1:4000/", &allow), 0);
    assert_int_equal(service_url_check("http://localhost:4000/x/", &allow), 0);
    assert_int_equal(service_url_check("http://[::1]:4000/", &allow), 0);
    assert_int_equal(service_url_check("https://127.0.0.1:4000/", &allow), 0);
    /* plain http to a real host is refused even when the host is allowed */
    assert_int_equal(service_url_check("http://smba.trafficmanager.net/amer/", &allow),
                     DG_ERR_INVALID);
    /* a loopback host that is not listed is refused */
    assert_int_equal(service_url_check("http://127.0.0.2:4000/", &allow), DG_ERR_INVALID);
}

static void host_extraction(void **state)
{
    char host[64];
    bool https;
    assert_true(service_url_host("https://Host.Example:8443/p?q", host, sizeof(host), &https));
    assert_string_equal(host, "host.example");
    assert_true(https);
    assert_true(service_url_host("http://[::1]:9/", host, sizeof(host), &https));
    assert_string_equal(host, "::1");
    assert_false(https);
    assert_false(service_url_host("http://a b/", host, sizeof(host), &https));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allowed_https_hosts_pass),
        cmocka_unit_test(other_hosts_fail),
        cmocka_unit_test(dot_entries_admit_subdomains_only),
        cmocka_unit_test(plain_http_only_for_listed_loopback),
        cmocka_unit_test(host_extraction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
