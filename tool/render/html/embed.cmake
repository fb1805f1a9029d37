# Writes the HTML report's page into a C++ source file (a raw string), so
# that the pagewaste binary carries it: cmake -DIN=report.html -DOUT=file.cpp -P embed.cmake
file(READ "${IN}" page)
file(WRITE "${OUT}" "// Generated from tool/render/html/report.html by tool/render/html/embed.cmake.\n"
                    "namespace pagewaste {\n"
                    "extern const char* const kHtmlTemplate;\n"
                    "const char* const kHtmlTemplate = R\"PAGEWASTE_HTML(${page})PAGEWASTE_HTML\";\n"
                    "}  // namespace pagewaste\n")
