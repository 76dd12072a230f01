/* probe prints what the C SDK's option accessors return, for sdk_test.go. */
#include <stdio.h>

#include "kiln.h"

int main(void) {
	const char *opts = kiln_options();
	size_t len = 0;
	const char *nested = kiln_opt_raw(opts, "nested", &len);
	printf("greeting=%s\n", kiln_opt_string(opts, "greeting", "(default)"));
	printf("count=%lld\n", kiln_opt_int(opts, "count", -1));
	printf("flag=%s\n", kiln_opt_bool(opts, "flag", false) ? "true" : "false");
	printf("nested=%.*s\n", nested ? (int)len : 6, nested ? nested : "(none)");
	return 0;
}
