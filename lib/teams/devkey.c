/*
 * devkey.c: load or create digest-stub's development RSA key. Creation
 * writes a private temporary file and then link()s it into place, which
 * fails if another process got there first; the loser then reads the
 * winner's key, so `serve` and `say` started together never disagree.
 */
#include "teams/devkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "core/buf.h"
#include "core/log.h"

#define PATH_MAX_BYTES 4096

/* Reads an RSA private key from path; 0, -ENOENT, or another error (logged). */
static int read_key(const char *path, EVP_PKEY **key)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    if (!f) {
        if (errno == ENOENT)
            return -ENOENT;
        log_error("key: cannot open %s: %s", path, strerror(errno));
        return DG_ERR_UNAVAILABLE;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || !EVP_PKEY_is_a(k, "RSA")) {
        log_error("key: %s holds no RSA private key (delete it to get a new one)", path);
        EVP_PKEY_free(k);
        return DG_ERR_INVALID;
    }
    *key = k;
    return 0;
}

/* Writes key as PKCS#8 PEM into a new file at path, mode 0600. */
static int write_key(const char *path, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f;
    int ok;

    if (fd < 0) {
        log_error("key: cannot create %s: %s", path, strerror(errno));
        return DG_ERR_UNAVAILABLE;
    }
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return DG_ERR_UNAVAILABLE;
    }
    ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0 || !ok) {
        log_error("key: cannot write %s", path);
        return DG_ERR_UNAVAILABLE;
    }
    return 0;
}

/* Generates a key and publishes it at path unless someone else already did. */
static int create_key(const char *dir, const char *path, EVP_PKEY **key)
{
    char tmp[PATH_MAX_BYTES];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)STUB_KEY_BITS);
    int err;

    if (!k) {
        log_error("key: RSA key generation failed");
        return DG_ERR_UNAVAILABLE;
    }
    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", dir, STUB_KEY_FILE, (long)getpid());
    err = write_key(tmp, k);
    if (!err && link(tmp, path) != 0) {
        if (errno == EEXIST) {
            /* Lost the race: the file in place is the key everyone uses. */
            EVP_PKEY_free(k);
            k = NULL;
            err = read_key(path, &k);
        } else {
            log_error("key: cannot create %s: %s", path, strerror(errno));
            err = DG_ERR_UNAVAILABLE;
        }
    }
    unlink(tmp);
    if (err) {
        EVP_PKEY_free(k);
        return err;
    }
    log_info("key: created a development RSA-%d key in %s", STUB_KEY_BITS, path);
    *key = k;
    return 0;
}

int stub_key_load(const char *dir, EVP_PKEY **key, char kid[JWT_KID_LEN + 1])
{
    char path[PATH_MAX_BYTES];
    EVP_PKEY *k = NULL;
    int err;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, STUB_KEY_FILE) >= sizeof(path))
        return DG_ERR_INVALID;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("key: cannot create directory %s: %s", dir, strerror(errno));
        return DG_ERR_UNAVAILABLE;
    }
    err = read_key(path, &k);
    if (err == -ENOENT)
        err = create_key(dir, path, &k);
    if (!err)
        err = jwt_key_thumbprint(k, kid);
    if (err) {
        EVP_PKEY_free(k);
        return err;
    }
    *key = k;
    return 0;
}
