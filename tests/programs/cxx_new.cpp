// C++ new/delete reach the shim through malloc; the call site must come back
// demangled.
#include <memory>
#include <vector>

namespace shapes {

struct Widget {
  double x, y, z;
  int id;
};

Widget* make_widget(int id) {
  return new Widget{0, 0, 0, id};  // SITE: new
}

}  // namespace shapes

int main() {
  std::vector<shapes::Widget*> widgets;
  widgets.reserve(500);
  for (int i = 0; i < 500; ++i) widgets.push_back(shapes::make_widget(i));
  for (shapes::Widget* w : widgets) delete w;
  return 0;
}
