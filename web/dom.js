// dom.js: building elements from data without ever parsing a string as markup
// (text goes in as text), which is also what the page's Trusted Types policy
// (require-trusted-types-for 'script') enforces.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// el('td', {class: 'num', text: '3'}) or el('tr', {}, cell, cell, ...).
export function el(tag, props, ...children) {
  return fill(document.createElement(tag), props, children);
}

export function svg(tag, props, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

export function byId(id) {
  return document.getElementById(id);
}

// Sets the text of every [data-stat=name] element.
export function setStat(name, text) {
  for (const node of document.querySelectorAll(`[data-stat="${name}"]`)) node.textContent = text;
}

export function show(node, visible) {
  node.hidden = !visible;
}
