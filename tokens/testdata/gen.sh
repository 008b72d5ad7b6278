#!/bin/sh
# Regenerates the PEM fixtures of tokens/ with openssl (3.x). Test keys only: never use them elsewhere.
set -eu
cd "$(dirname "$0")"
openssl genpkey -algorithm ed25519 -out ed25519-pkcs8.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256-pkcs8.pem
openssl ecparam -name prime256v1 -genkey -out p256-sec1.pem            # EC PARAMETERS + EC PRIVATE KEY
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048-pkcs8.pem
openssl genrsa -traditional -out rsa2048-pkcs1.pem 2048               # RSA PRIVATE KEY
# refused
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024-pkcs8.pem
openssl genrsa -traditional -out rsa1024-pkcs1.pem 1024
openssl ecparam -name secp384r1 -genkey -noout -out p384-sec1.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384-pkcs8.pem
openssl ecparam -name secp256k1 -genkey -noout -out secp256k1-sec1.pem
openssl genpkey -algorithm X25519 -out x25519-pkcs8.pem
openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:test -out ed25519-encrypted.pem
openssl pkey -in ed25519-pkcs8.pem -pubout -out ed25519-public.pem
