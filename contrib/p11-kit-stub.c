/*
 * p11-kit-stub.c - for `make static` only: the p11-kit functions
 * libgnutls.a refers to, all failing.
 *
 * Debian ships every static archive vncsasl needs except p11-kit's
 * (libp11-kit-dev has only the shared library: p11-kit loads PKCS#11
 * modules with dlopen(), which a static binary cannot do safely).
 * GnuTLS only calls into p11-kit for "pkcs11:" URLs and PKCS#11 tokens,
 * which vncsasl never uses: its certificate and key come from PEM files
 * (-C, -K, -T).  So the static build gives up PKCS#11 - a key on a
 * smart card or HSM - and nothing else.  Every function here reports
 * "not found" or "no memory" without touching its arguments, and GnuTLS
 * turns that into an ordinary PKCS#11 error.
 *
 * The prototypes come from p11-kit's own headers (libp11-kit-dev, which
 * libgnutls28-dev depends on), so the types cannot drift.
 */
#include <stddef.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pin.h>
#include <p11-kit/uri.h>

#define NOT_HERE "PKCS#11 is not available in this static build"

CK_FUNCTION_LIST **
p11_kit_modules_load(const char *reserved, int flags)
{
	(void)reserved; (void)flags;
	return NULL;
}

CK_FUNCTION_LIST *
p11_kit_module_load(const char *path, int flags)
{
	(void)path; (void)flags;
	return NULL;
}

CK_RV
p11_kit_module_finalize(CK_FUNCTION_LIST *m)
{
	(void)m;
	return CKR_GENERAL_ERROR;
}

void
p11_kit_module_release(CK_FUNCTION_LIST *m)
{
	(void)m;
}

char *
p11_kit_module_get_name(CK_FUNCTION_LIST *m)
{
	(void)m;
	return NULL;
}

int
p11_kit_module_get_flags(CK_FUNCTION_LIST *m)
{
	(void)m;
	return 0;
}

char *
p11_kit_config_option(CK_FUNCTION_LIST *m, const char *option)
{
	(void)m; (void)option;
	return NULL;
}

const char *
p11_kit_strerror(CK_RV rv)
{
	(void)rv;
	return NOT_HERE;
}

const char *
p11_kit_message(void)
{
	return NOT_HERE;
}

size_t
p11_kit_space_strlen(const unsigned char *s, size_t max)
{
	while (max > 0 && s[max - 1] == ' ')
		max--;
	return max;
}

char *
p11_kit_space_strdup(const unsigned char *s, size_t max)
{
	(void)s; (void)max;
	return NULL;
}

P11KitPin *
p11_kit_pin_new_for_string(const char *value)
{
	(void)value;
	return NULL;
}

void
p11_kit_pin_unref(P11KitPin *pin)
{
	(void)pin;
}

const unsigned char *
p11_kit_pin_get_value(P11KitPin *pin, size_t *length)
{
	(void)pin;
	if (length != NULL)
		*length = 0;
	return NULL;
}

size_t
p11_kit_pin_get_length(P11KitPin *pin)
{
	(void)pin;
	return 0;
}

int
p11_kit_pin_register_callback(const char *source, p11_kit_pin_callback cb,
    void *data, p11_kit_pin_destroy_func destroy)
{
	(void)source; (void)cb; (void)data; (void)destroy;
	return -1;
}

void
p11_kit_pin_unregister_callback(const char *source, p11_kit_pin_callback cb,
    void *data)
{
	(void)source; (void)cb; (void)data;
}

P11KitPin *
p11_kit_pin_request(const char *source, P11KitUri *uri, const char *desc,
    P11KitPinFlags flags)
{
	(void)source; (void)uri; (void)desc; (void)flags;
	return NULL;
}

P11KitPin *
p11_kit_pin_file_callback(const char *source, P11KitUri *uri,
    const char *desc, P11KitPinFlags flags, void *data)
{
	(void)source; (void)uri; (void)desc; (void)flags; (void)data;
	return NULL;
}

P11KitUri *
p11_kit_uri_new(void)
{
	return NULL;
}

void
p11_kit_uri_free(P11KitUri *uri)
{
	(void)uri;
}

int
p11_kit_uri_parse(const char *s, P11KitUriType type, P11KitUri *uri)
{
	(void)s; (void)type; (void)uri;
	return P11_KIT_URI_NOT_FOUND;
}

int
p11_kit_uri_format(P11KitUri *uri, P11KitUriType type, char **out)
{
	(void)uri; (void)type;
	if (out != NULL)
		*out = NULL;
	return P11_KIT_URI_UNEXPECTED;
}

CK_INFO_PTR
p11_kit_uri_get_module_info(P11KitUri *uri)
{
	(void)uri;
	return NULL;
}

CK_TOKEN_INFO_PTR
p11_kit_uri_get_token_info(P11KitUri *uri)
{
	(void)uri;
	return NULL;
}

int
p11_kit_uri_match_module_info(const P11KitUri *uri, const CK_INFO *info)
{
	(void)uri; (void)info;
	return 0;
}

int
p11_kit_uri_match_token_info(const P11KitUri *uri, const CK_TOKEN_INFO *ti)
{
	(void)uri; (void)ti;
	return 0;
}

CK_ATTRIBUTE_PTR
p11_kit_uri_get_attribute(P11KitUri *uri, CK_ATTRIBUTE_TYPE type)
{
	(void)uri; (void)type;
	return NULL;
}

CK_ATTRIBUTE_PTR
p11_kit_uri_get_attributes(P11KitUri *uri, CK_ULONG *n)
{
	(void)uri;
	if (n != NULL)
		*n = 0;
	return NULL;
}

int
p11_kit_uri_set_attribute(P11KitUri *uri, CK_ATTRIBUTE_PTR attr)
{
	(void)uri; (void)attr;
	return P11_KIT_URI_UNEXPECTED;
}

const char *
p11_kit_uri_get_pin_value(const P11KitUri *uri)
{
	(void)uri;
	return NULL;
}

const char *
p11_kit_uri_get_pin_source(const P11KitUri *uri)
{
	(void)uri;
	return NULL;
}
