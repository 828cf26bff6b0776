// Generates canonical.json: inputs and the output of safe-stable-stringify
// (default options) after JSON.parse, as Mojaloop's validator computes it.
// Run: node gen_canonical.js > canonical.json
// If the safe-stable-stringify package is resolvable it is used; otherwise
// an equivalent (JSON.stringify with keys sorted by default sort at every
// level) is used.
let stringify;
try {
  stringify = require('safe-stable-stringify');
} catch (e) {
  // Build the text directly: assigning keys to a fresh object would
  // reorder integer-like keys and drop __proto__.
  stringify = (v) => {
    if (Array.isArray(v)) return '[' + v.map((e) => stringify(e)).join(',') + ']';
    if (v !== null && typeof v === 'object') {
      return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + stringify(v[k])).join(',') + '}';
    }
    return JSON.stringify(v);
  };
}
const inputs = [
  '{}', '[]', 'null', 'true', 'false', '0', '-0', '1.0', '1E2', '1e21', '1e+21', '123456789012345678901',
  '1e-7', '0.000001', '0.0000001', '1.5e-7', '123e-20', '5e-324', '1.7976931348623157e308', '1e400', '-1e400',
  '0.1', '0.30000000000000004', '100', '1e20', '12345678901234567890', '-12.5e3', '2.5E-3', '9007199254740993',
  '{"b":1,"a":2}', '{"a":1,"a":2}', '{"b":{"d":1,"c":[3,{"z":0,"y":1}]},"a":null}',
  '  { "x" : [ 1 , 2 ] , "\\u0041" : "a" }  ',
  '"<>&\'/"', '"\\u2028\\u2029"', '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"😀"',
  '"\\u0000\\u0001\\u001f\\u007f"', '"\\b\\f\\n\\r\\t\\"\\\\\\/"', '"é\\u00e9"',
  '{"\\ud83d\\ude00":1,"\\uffff":2,"\\ue000":3,"a":4,"B":5,"10":6,"9":7,"__proto__":8,"":9}',
  '{"amount":{"currency":"USD","amount":"100.50"},"transferId":"b51ec534-ee48-4575-b6a9-ead2955b8069","payeeFsp":"dfsp2","payerFsp":"dfsp1","expiration":"2016-05-24T08:38:08.699-04:00","ilpPacket":"AYIBgQAAAAAAAASwNGxldmVsb25lLmRmc3AxLm1lci45T2RTOF81MDdqUUZERmZlakgyOVc4bXFmNEpLMHlGTFGCAUBQU0svMS4wCk5vbmNlOiB1SXlweUYzY3pYSXBFdzVVc05TYWh3CkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogMTMyMzZhM2ItOGZhOC00MTYzLTg0NDctNGMzZWQzZGE5OGE3CgpDb250ZW50LUxlbmd0aDogMTM1CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogOTI4MDYzOTEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJpbnZvaWNlXCIsXCJkZWJpdE5hbWVcIjpcImFsaWNlIGNvb3BlclwiLFwiY3JlZGl0TmFtZVwiOlwibWVyIGNoYW50XCIsXCJkZWJpdElkZW50aWZpZXJcIjpcIjkyODA2MzkxXCJ9IgA","condition":"f5sqb7tBTWPd5Y8BDFdMm9BJR_MNI4isf8p8n4D5pHA"}',
  '[1.10,2.000,-0.0,3e0,[[]],{}]',
];
const out = inputs.map((i) => ({ in: i, out: stringify(JSON.parse(i)) }));
console.log(JSON.stringify(out, null, 1));
