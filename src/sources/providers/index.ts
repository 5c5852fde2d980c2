/** The providers a source can verify, by name, behind one function. */
import type { IncomingRequest, Verification } from './common.js';
import { verifyGithub } from './github.js';
import { verifyHmac, type HmacOptions } from './hmac.js';
import { verifyShopify } from './shopify.js';
import { verifySlack } from './slack.js';
import { verifyStandardWebhooks } from './standard-webhooks.js';
import { verifyStripe } from './stripe.js';
import { verifyWoocommerce } from './woocommerce.js';

export const PROVIDERS = ['stripe', 'github', 'shopify', 'woocommerce', 'slack', 'standard-webhooks', 'hmac'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export interface VerifyOptions {
  toleranceSeconds: number;
  hmac?: HmacOptions | null;
}

/** Verifies a request as `provider` sends it; never throws for anything the request contains. */
export function verifyRequest(provider: ProviderName, req: IncomingRequest, secret: string, o: VerifyOptions): Verification {
  switch (provider) {
    case 'stripe':
      return verifyStripe(req, secret, o.toleranceSeconds);
    case 'github':
      return verifyGithub(req, secret);
    case 'shopify':
      return verifyShopify(req, secret);
    case 'woocommerce':
      return verifyWoocommerce(req, secret);
    case 'slack':
      return verifySlack(req, secret, o.toleranceSeconds);
    case 'standard-webhooks':
      return verifyStandardWebhooks(req, secret, o.toleranceSeconds);
    case 'hmac':
      if (!o.hmac) return { ok: false, reason: 'the source has no HMAC settings; set hmac.header, hmac.algorithm and hmac.encoding' };
      return verifyHmac(req, secret, o.hmac, o.toleranceSeconds);
  }
}

export type { IncomingRequest, Verification } from './common.js';
export type { HmacOptions } from './hmac.js';
