// Order bodies for tests of order-api: a valid one, and the malformed kinds it must refuse
// with 400 and the failing fields.

export const VALID_ORDER = {
  customerId: 'cust-1',
  items: [
    { sku: 'PROD-001', quantity: 2, unitPrice: 19.99 },
    { sku: 'PROD-002', quantity: 1, unitPrice: 5 },
  ],
  currency: 'EUR',
  shippingAddress: { city: 'Berlin', country: 'DE' },
  paymentMethod: { token: 'tok_ok' },
};

/** [what, body, expected status] for each kind of malformed body that is still JSON. */
export function malformedOrders(valid: Record<string, unknown> = VALID_ORDER): Array<[string, unknown, number]> {
  return [
    ['an empty object', {}, 400],
    ['no customerId', { ...valid, customerId: undefined }, 400],
    ['customerId a number', { ...valid, customerId: 42 }, 400],
    ['customerId empty', { ...valid, customerId: '' }, 400],
    ['customerId too long', { ...valid, customerId: 'x'.repeat(65) }, 400],
    ['no items', { ...valid, items: undefined }, 400],
    ['empty items', { ...valid, items: [] }, 400],
    ['items not an array', { ...valid, items: { sku: 'PROD-001' } }, 400],
    ['an item without sku', { ...valid, items: [{ quantity: 1, unitPrice: 1 }] }, 400],
    ['a lower-case sku', { ...valid, items: [{ sku: 'prod-001', quantity: 1, unitPrice: 1 }] }, 400],
    ['a negative quantity', { ...valid, items: [{ sku: 'PROD-001', quantity: -1, unitPrice: 1 }] }, 400],
    ['a zero quantity', { ...valid, items: [{ sku: 'PROD-001', quantity: 0, unitPrice: 1 }] }, 400],
    ['a fractional quantity', { ...valid, items: [{ sku: 'PROD-001', quantity: 1.5, unitPrice: 1 }] }, 400],
    ['a quantity as a string', { ...valid, items: [{ sku: 'PROD-001', quantity: '1', unitPrice: 1 }] }, 400],
    ['a negative price', { ...valid, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: -5 }] }, 400],
    ['a price with three decimals', { ...valid, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1.234 }] }, 400],
    ['a price as a string', { ...valid, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: '1' }] }, 400],
    ['too many items', { ...valid, items: Array.from({ length: 101 }, () => ({ sku: 'PROD-001', quantity: 1, unitPrice: 1 })) }, 400],
    ['an unknown field in an item', { ...valid, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1, discount: 5 }] }, 400],
    ['no currency', { ...valid, currency: undefined }, 400],
    ['a lower-case currency', { ...valid, currency: 'eur' }, 400],
    ['a currency of four letters', { ...valid, currency: 'EURO' }, 400],
    ['no shippingAddress', { ...valid, shippingAddress: undefined }, 400],
    ['a country of three letters', { ...valid, shippingAddress: { city: 'Berlin', country: 'DEU' } }, 400],
    ['no city', { ...valid, shippingAddress: { country: 'DE' } }, 400],
    ['no paymentMethod', { ...valid, paymentMethod: undefined }, 400],
    ['an empty token', { ...valid, paymentMethod: { token: '' } }, 400],
    // Found by the fuzzer: PostgreSQL cannot store NUL, and this was a 503.
    ['a NUL in customerId', { ...valid, customerId: 'a\u0000b' }, 400],
    ['a control character in the city', { ...valid, shippingAddress: { city: 'Ber\u0007lin', country: 'DE' } }, 400],
    ['an unknown top-level field', { ...valid, admin: true }, 400],
    ['an array body', [valid], 400],
    ['a JSON string', 'order please', 400],
    ['JSON null', null, 400],
    ['deep nesting', { ...valid, shippingAddress: JSON.parse('{"a":'.repeat(200) + '1' + '}'.repeat(200)) as object }, 400],
  ];
}
