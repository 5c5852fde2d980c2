/**
 * Provider request fixtures. The WooCommerce and Shopify signatures below were computed outside
 * Koppel by two independent implementations, Python's `hmac` module and the `openssl dgst -hmac`
 * command line, which agreed byte for byte:
 *
 *   python3 -c 'import hmac,hashlib,base64,sys; print(base64.b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest()))'
 *   printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
 */

/** A WooCommerce `order.created` body for the seed-001 webshop (a garden tools shop). */
export const WOO_ORDER_BODY =
  '{"id":727,"parent_id":0,"number":"727","order_key":"wc_order_58d2d042d1d","created_via":"checkout","status":"processing","currency":"EUR","date_created":"2026-03-14T10:22:08","total":"60.50","total_tax":"10.50","customer_id":12,"billing":{"first_name":"Jan","last_name":"Jansen","company":"Jansen Tuinen B.V.","address_1":"Kerkstraat 1","city":"Utrecht","postcode":"3511 AB","country":"NL","email":"jan@jansen-tuinen.example","phone":"0612345678"},"payment_method":"ideal","payment_method_title":"iDEAL","line_items":[{"id":315,"name":"Snoeischaar","product_id":93,"quantity":2,"subtotal":"40.00","total":"40.00","total_tax":"8.40","sku":"SN-01","price":20},{"id":316,"name":"Tuinhandschoenen","product_id":94,"quantity":1,"subtotal":"10.00","total":"10.00","total_tax":"2.10","sku":"TH-02","price":10}],"meta_data":[{"key":"klantstatus","value":"Actieve Klant"}]}';
export const WOO_SECRET = 'wc-secret-9f8e7d6c5b4a';
export const WOO_ORDER_SIGNATURE = 'qIXweHTAxznrpSHHuWPdi5cO7ZSXr1IZEm401oHNPa0=';
/** The signature of the body `webhook_id=15` under WOO_SECRET (a signed ping). */
export const WOO_PING_SIGNATURE = 'wWoA7JH5jkbPoFU2SMLPQi6rQSty/Onx2ePpKK8b6GM=';

export const SHOPIFY_BODY = '{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00","currency":"EUR","line_items":[{"title":"IPod Nano - 8gb","quantity":1,"price":"199.00"}]}';
export const SHOPIFY_SECRET = 'shpss_5f1d2c3b4a69788776655443322110';
export const SHOPIFY_SIGNATURE = 'PvPksbPgQHWlunJytyFKVJaHnJWRORu+qSpxp7AUjkQ=';

/** GitHub's published example (docs: "Validating webhook deliveries"). */
export const GITHUB_VECTOR = {
  secret: "It's a Secret to Everybody",
  body: 'Hello, World!',
  signature: 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
};

/** Slack's published example (docs: "Verifying requests from Slack"). */
export const SLACK_VECTOR = {
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
  timestamp: '1531420618',
  body: 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
};

/** Hex → base64 and back, for "the right digest in the wrong encoding" negatives. */
export const hexToBase64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
export const base64ToHex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
