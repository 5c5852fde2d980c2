/** Headers Koppel sets itself or that would break HTTP framing; custom headers and endpoint auth may not replace them. */
export const RESERVED_HEADERS = /^(host|content-length|content-type|transfer-encoding|connection|keep-alive|upgrade|te|trailer|proxy-.*|expect|user-agent|webhook-.*|svix-.*)$/i;
