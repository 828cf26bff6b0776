// Interop with Mojaloop's own JWS code (@mojaloop/sdk-standard-components
// 19.x). Test keys only: rsa_key.pem / ec_key.pem were made for these tests.
//
//   NODE_PATH=/path/to/node_modules node mojaloop_sdk.js sign > sdk_signed.json
//     signs sample requests with JwsSigner (RS256 and ES256).
//   NODE_PATH=... node mojaloop_sdk.js validate < messages.json
//     validates messages [{alg, headers, body}] with JwsValidator; prints
//     "ok N" or the first error, and exits non-zero on failure.
'use strict';
const fs = require('fs');
const path = require('path');
const { Jws } = require('@mojaloop/sdk-standard-components');
const quiet = { child: () => quiet, debug() {}, info() {}, warn() {}, error() {}, isDebugEnabled: false };
const key = (f) => fs.readFileSync(path.join(__dirname, f), 'utf8');

if (process.argv[2] === 'sign') {
  const out = [];
  // The last case puts a non-ASCII character in FSPIOP-URI: the jws
  // package under the SDK encodes the protected header as Latin-1, not
  // UTF-8 as RFC 7515 requires, so a strict verifier must refuse it.
  for (const [alg, priv, q] of [['RS256', 'rsa_key.pem', 'x=<1>&y=%C3%A9'], ['ES256', 'ec_key.pem', 'x=<1>'], ['RS256-latin1', 'rsa_key.pem', 'y=é']]) {
    const signer = new Jws.signer({ signingKey: key(priv), logger: quiet });
    const req = {
      method: 'put',
      uri: 'https://hub.example:3000/transfers/b51ec534-ee48-4575-b6a9-ead2955b8069?' + q,
      headers: {
        'fspiop-source': 'payerfsp',
        'fspiop-destination': 'payeefsp',
        date: 'Tue, 23 May 2017 21:12:31 GMT',
        'content-type': 'application/vnd.interoperability.transfers+json;version=1.1',
      },
      body: { transferState: 'COMMITTED', completedTimestamp: '2017-11-16T04:15:35.513Z',
        fulfilment: 'WLctttbu2HvTsa1XWvUoGRcQozHsqeu9Ahl2JW9Bsu8', amount: { amount: 100.0, currency: 'USD' },
        note: '<b>&"\u2028', extensionList: { extension: [{ key: 'z', value: '1' }, { key: 'a', value: 1e21 }] } },
    };
    signer.sign(req);
    out.push({ alg, method: req.method.toUpperCase(), uri: req.headers['fspiop-uri'], headers: req.headers, body: req.body });
  }
  console.log(JSON.stringify(out, null, 1));
} else if (process.argv[2] === 'validate') {
  const msgs = JSON.parse(fs.readFileSync(0, 'utf8'));
  const validationKeys = { payerfsp: key('rsa_pub.pem'), payerfspec: key('ec_pub.pem') };
  const v = new Jws.validator({ validationKeys, logger: quiet });
  for (const m of msgs) {
    // The validator is given the parsed body, as an HTTP framework would.
    v.validate({ headers: m.headers, body: JSON.parse(m.body) });
  }
  console.log('ok ' + msgs.length);
} else {
  console.error('usage: mojaloop_sdk.js sign|validate');
  process.exit(2);
}
