/**
 * Where a JSON text first goes wrong, for error messages: V8's `JSON.parse` names a position for most errors but
 * not for an unexpected token (`Unexpected token '}', "…" is not valid JSON`) or a text that ends too early.
 * `jsonErrorOffset` scans the text by the grammar of RFC 8259 and returns the offset of the first character that
 * cannot continue a valid text (the text's length when it ends too early), or null when the text is valid.
 */

const WS = new Set([' ', '\t', '\n', '\r']);

/** Offset (0-based, in UTF-16 units) of the first character where `text` stops being valid JSON; null if valid. */
export function jsonErrorOffset(text: string): number | null {
  let i = 0;
  const fail = (at: number): never => {
    throw at;
  };
  const ws = () => {
    while (i < text.length && WS.has(text[i]!)) i++;
  };
  const literal = (word: string) => {
    for (let j = 0; j < word.length; j++, i++) if (text[i] !== word[j]) fail(i);
  };
  const digits = () => {
    const start = i;
    while (i < text.length && text[i]! >= '0' && text[i]! <= '9') i++;
    if (i === start) fail(i);
  };
  const number = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits();
    }
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail(i);
      const c = text[i]!;
      if (c === '"') {
        i++;
        return;
      }
      if (c < ' ') fail(i); // a raw control character (a line break) inside a string
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          for (let j = 2; j < 6; j++) if (!/[0-9a-fA-F]/.test(text[i + j] ?? '')) fail(i + j);
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail(i + 1);
        i += 2;
        continue;
      }
      i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(i);
        string();
        ws();
        if (text[i] !== ':') fail(i);
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(i);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(i);
      }
    }
    if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
    else fail(i);
  };
  try {
    value();
    ws();
    if (i < text.length) fail(i);
    return null;
  } catch (at) {
    if (typeof at === 'number') return Math.min(at, text.length);
    throw at;
  }
}
